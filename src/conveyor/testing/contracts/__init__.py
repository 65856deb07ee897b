"""Contract test suites: subclass one and provide the backend fixture."""
