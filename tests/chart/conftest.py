def pytest_configure(config):
    config.addinivalue_line("markers", "docker: runs the rendered container in Docker")
