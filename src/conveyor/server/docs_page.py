"""The interactive docs page: self-contained (no CDN), built from ``openapi.json`` in the browser.

Everything from the server is inserted with ``textContent``, never as markup.
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Conveyor API</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}
details{border:1px solid #ccc;border-radius:4px;margin:.4em 0;padding:.3em .6em}
summary{cursor:pointer}.m{display:inline-block;width:4.5em;font-weight:bold}
textarea,input{width:100%;font:12px monospace}pre{background:#f4f4f4;padding:.5em;overflow:auto}
</style></head><body>
<h1>Conveyor REST API</h1>
<p>Token (sent as <code>Authorization: Bearer …</code>): <input id="token" type="password"></p>
<div id="ops">loading /api/v1/openapi.json …</div>
<script>
"use strict";
function el(tag, text){const e=document.createElement(tag); if(text!==undefined){e.textContent=text;} return e;}
fetch("/api/v1/openapi.json").then(r=>r.json()).then(doc=>{
  const box=document.getElementById("ops"); box.textContent="";
  for(const [path, ops] of Object.entries(doc.paths)){
    for(const [method, op] of Object.entries(ops)){
      const d=el("details"), s=el("summary"), m=el("span", method.toUpperCase());
      m.className="m"; s.append(m, el("code", path), el("span", "  " + (op.summary||"")));
      d.append(s);
      const url=el("input"); url.value=path; d.append(el("p","URL (fill in {placeholders} and ?query):"), url);
      let body=null;
      if(op.requestBody){ body=el("textarea"); body.rows=6; body.value="{}"; d.append(el("p","JSON body:"), body); }
      const go=el("button","Send"), out=el("pre");
      go.onclick=()=>{
        const headers={"Content-Type":"application/json"}, t=document.getElementById("token").value;
        if(t){headers["Authorization"]="Bearer "+t;}
        fetch(url.value,{method:method.toUpperCase(),headers,body:body?body.value:undefined})
          .then(async r=>{out.textContent=r.status+" "+r.statusText+"\\n"+await r.text();})
          .catch(e=>{out.textContent=String(e);});
      };
      d.append(go, out); box.append(d);
    }
  }
}).catch(e=>{document.getElementById("ops").textContent="could not load the API document: "+e;});
</script></body></html>
"""
