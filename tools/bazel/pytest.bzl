"""pytest_test: a py_test that runs a directory of pytest tests through tools/bazel/pytest_main.py."""

def pytest_test(name, srcs, tests_dir = "tests", config = "pyproject.toml", deps = [], data = [], args = [], **kwargs):
    """A py_test running pytest on `tests_dir` of this package, configured by `config`.

    Args:
      name: the target name.
      srcs: the test files and conftest.py files (helpers that tests run as scripts go in data).
      tests_dir: the directory, relative to this package, that pytest collects ("" or "."
        for the package itself).
      config: the pyproject.toml whose [tool.pytest.ini_options] applies (a label); its
        directory is the rootdir, so node ids match `nox -s tests`. None: no configuration
        file, and this package is the rootdir.
      deps: py_library targets the tests import (the package under test, its dependencies).
      data: other files the tests read or run.
      args: extra pytest arguments, before the path; node ids (e.g. for --deselect) are
        relative to the rootdir.
      **kwargs: passed to py_test (shard_count, size, timeout, tags, ...).
    """
    package = native.package_name()
    path = "/".join([part for part in [package, tests_dir] if part not in ("", ".")]) or "."
    main = "//tools/bazel:pytest_main.py"
    if config:
        config_label = config if ":" in config else ":" + config

        # pytest_main.py makes the config file's directory the rootdir.
        config_args = ["--config=$(rootpath %s)" % config_label]
        config_data = [config_label]
    else:
        config_args = ["--rootdir=" + (package or ".")]
        config_data = []
    native.py_test(
        name = name,
        srcs = srcs + [main],
        main = main,
        deps = deps,
        data = data + config_data,
        args = config_args + args + ["--tests=" + path],
        python_version = "PY3",
        srcs_version = "PY3",
        legacy_create_init = False,
        **kwargs
    )
