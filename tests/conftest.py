pytest_plugins = ["conveyor.testing.fixtures"]
