pytest_plugins = ["conveyor.testing.fixtures", "conveyor.testing.datasets"]
