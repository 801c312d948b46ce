# Fixtures shared by the core's and the plugins' tests: the local PDS sandbox
# (`pds_sandbox`, `make_account`).
pytest_plugins = ["atdata_core.sandbox.pytest_plugin"]
