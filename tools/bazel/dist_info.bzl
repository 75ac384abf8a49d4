"""dist_info: the installed-distribution metadata of a package whose code Bazel provides.

Bazel puts src/ on sys.path instead of installing the package, so importlib.metadata would not
know it: pytest, which finds plugins through the "pytest11" entry point group, would not load
pytest-prefect-testkit, and `prefect-testkit clean` would not find core's
"prefect_testkit.cleanup" hook. An action (dist_info.py) reads the package's pyproject.toml and
the repository's VERSION (the monorepo's one version) and writes what an install would have
written, <dir>/<name>-<version>.dist-info/{METADATA, entry_points.txt}, and a py_library puts
<dir> on sys.path: the package is then seen exactly as from a wheel. Nothing is copied by hand:
changing pyproject.toml or VERSION changes the metadata.
"""

def _dist_info_files_impl(ctx):
    output = ctx.actions.declare_directory(ctx.attr.dir)
    ctx.actions.run(
        executable = ctx.executable._python,
        arguments = [
            ctx.file._script.path,
            ctx.file.pyproject.path,
            ctx.file._version.path,
            output.path,
        ] + ["--requires=" + name for name in ctx.attr.requires],
        inputs = [ctx.file._script, ctx.file.pyproject, ctx.file._version],
        outputs = [output],
        mnemonic = "DistInfo",
        progress_message = "Writing the installed metadata of %s" % ctx.file.pyproject.short_path,
    )
    return [DefaultInfo(files = depset([output]), runfiles = ctx.runfiles(files = [output]))]

_dist_info_files = rule(
    implementation = _dist_info_files_impl,
    attrs = {
        "dir": attr.string(mandatory = True),
        "pyproject": attr.label(mandatory = True, allow_single_file = [".toml"]),
        "requires": attr.string_list(),
        "_python": attr.label(
            default = "@prefect_testkit_venv//:python3",
            executable = True,
            allow_single_file = True,
            cfg = "exec",
        ),
        "_script": attr.label(default = Label("//tools/bazel:dist_info.py"), allow_single_file = True),
        # The monorepo's one version, every package's (each pyproject.toml's [tool.hatch.version]).
        "_version": attr.label(default = Label("//:VERSION"), allow_single_file = True),
    },
)

def dist_info(name, pyproject = "pyproject.toml", requires = [], **kwargs):
    """A py_library holding the installed metadata that `pyproject` describes.

    Args:
      name: the target name; the metadata lands in the directory <name>_site of this package.
      pyproject: the pyproject.toml whose [project] name, entry points and scripts are
        written, with the version of //:VERSION.
      requires: the sibling distributions (packages/<name>) the package's Bazel library
        depends on: the build fails unless they are exactly the `siblings` of `pyproject`'s
        [tool.hatch.metadata.hooks.custom].
      **kwargs: passed to the py_library (visibility, ...).
    """
    _dist_info_files(
        name = name + "_files",
        dir = name + "_site",
        pyproject = pyproject,
        requires = requires,
    )
    native.py_library(
        name = name,
        data = [":" + name + "_files"],
        imports = [name + "_site"],
        **kwargs
    )

def py_package(name, deps = [], **kwargs):
    """The py_library of a distribution under packages/, with its metadata (`:dist_info`).

    The library depends on `:dist_info`, made from the package's pyproject.toml, which also
    checks that the sibling packages among `deps` are those its pyproject.toml depends on.

    Args:
      name: the py_library's name.
      deps: the py_library's dependencies (other packages' libraries).
      **kwargs: passed to the py_library (srcs, data, imports, visibility, ...).
    """
    siblings = [dep.split(":")[0].split("/")[-1] for dep in deps if dep.startswith("//packages/")]
    dist_info(name = "dist_info", requires = siblings)
    native.py_library(
        name = name,
        deps = [":dist_info"] + deps,
        **kwargs
    )
