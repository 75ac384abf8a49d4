"""dist_info: the installed-distribution metadata of a package whose code Bazel provides.

Bazel puts src/ on sys.path instead of installing the package, so importlib.metadata does not
know it, and pytest, which finds plugins through the "pytest11" entry point group, would not
load pytest-prefect-testkit. This writes the two files an install would have written,
<dir>/<name>-<version>.dist-info/{METADATA,entry_points.txt}, and a py_library that puts <dir>
on sys.path, so the plugin loads under Bazel exactly as it does from a wheel (by its entry point
name, which `-p no:prefect_testkit` and pytester runs rely on).
"""

def _dist_info_files_impl(ctx):
    stem = "%s/%s-%s.dist-info/" % (ctx.attr.dir, ctx.attr.distribution.replace("-", "_"), ctx.attr.version)
    metadata = ctx.actions.declare_file(stem + "METADATA")
    ctx.actions.write(metadata, "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (ctx.attr.distribution, ctx.attr.version))
    entry_points = ctx.actions.declare_file(stem + "entry_points.txt")
    lines = []
    for group, entries in sorted(ctx.attr.entry_points.items()):
        lines.append("[%s]" % group)
        lines.extend(entries)
        lines.append("")
    ctx.actions.write(entry_points, "\n".join(lines))
    return [DefaultInfo(files = depset([metadata, entry_points]), runfiles = ctx.runfiles(files = [metadata, entry_points]))]

_dist_info_files = rule(
    implementation = _dist_info_files_impl,
    attrs = {
        "distribution": attr.string(mandatory = True),
        "version": attr.string(mandatory = True),
        "entry_points": attr.string_list_dict(),
        "dir": attr.string(default = "dist-info"),
    },
)

def dist_info(name, distribution, version, entry_points = {}, dir = "dist-info", **kwargs):
    """A py_library holding the metadata of `distribution` (mirror its pyproject.toml)."""
    _dist_info_files(
        name = name + "_files",
        distribution = distribution,
        version = version,
        entry_points = entry_points,
        dir = dir,
    )
    native.py_library(
        name = name,
        data = [":" + name + "_files"],
        imports = [dir],
        **kwargs
    )
