"""Issue 10, Debian package: `cpack -G DEB` from the build directory (cmake/packaging.cmake).

The package is built once, from the given build directory into a temporary directory (cpack
reinstalls what is built; it compiles nothing when the build is current), then checked:
- the control data: name m2p-engine, the project's version, the host's architecture, and a
  Depends that dpkg-shlibdeps filled with the runtime libraries the binary links (LuaJIT,
  libcurl, libpq, cJSON, libev, libmicrohttpd, libsystemd, OpenSSL's libcrypto), adduser for
  postinst, and no -dev package;
- the files (`dpkg-deb -c`): the binary in /usr/bin, pools and scripts in /usr/share/m2p-engine,
  the docs in /usr/share/doc/m2p-engine, the settings file in /etc/m2p-engine (its only
  conffile), the unit in /lib/systemd/system, nothing elsewhere, everything owned by root;
- the extracted package (`dpkg-deb -x` into a temporary root): its unit starts the packaged
  binary with the packaged settings file as the user postinst creates, and passes
  `systemd-analyze verify`; its engine, run from another directory with no --pools/--scripts,
  finds the packaged pools and scripts for --check and --script-test;
- the maintainer scripts, run against stand-ins for adduser, getent, dpkg-statoverride and
  systemctl that record their calls: postinst creates the unit's user and group once (a second
  run creates nothing), and nothing enables or starts the service.
"""

import atexit
import filecmp
import os
import re
import shutil
import subprocess
import tempfile

import harness
from harness import REPO, check

SHIPPED_POOLS = sorted(p for p in os.listdir(os.path.join(REPO, "pools")) if p.endswith(".lua"))
SHIPPED_SCRIPTS = sorted(p for p in os.listdir(os.path.join(REPO, "scripts"))
                         if p.endswith(".lua"))
# What dpkg-shlibdeps must have put in Depends: a runtime package per linked library.
RUNTIME_LIBRARIES = {
    "LuaJIT": r"libluajit\S*",
    "libcurl": r"libcurl\d\S*",
    "libpq": r"libpq\d+",
    "cJSON": r"libcjson\d+",
    "yajl": r"libyajl\d+",
    "libev": r"libev\d+",
    "libmicrohttpd": r"libmicrohttpd\d+",
    "libsystemd": r"libsystemd\d+",
    "libcrypto (OpenSSL)": r"libssl\d\S*|libcrypto\S*",
}
# Every file of the package lives under one of these.
PACKAGE_DIRS = ("./usr/bin/", "./usr/share/m2p-engine/", "./usr/share/doc/m2p-engine/",
                "./etc/m2p-engine/", "./lib/systemd/system/")
ENV_FILE = "/etc/m2p-engine/m2p-engine.env"
UNIT = "/lib/systemd/system/m2p-engine.service"
BINARY = "/usr/bin/m2p-engine"

_built = {}


def run(args, what, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)
    check(r.returncode == 0, "%s exited %s:\n%s%s" % (what, r.returncode, r.stdout[-3000:],
                                                       r.stderr[-3000:]))
    return r.stdout


def package(ctx):
    """(path of the .deb, root it is extracted into), built on first use for all the tests."""
    if _built:
        return _built["deb"], _built["root"]
    for tool, deb in (("cpack", "cmake"), ("dpkg-deb", "dpkg"), ("dpkg-shlibdeps", "dpkg-dev")):
        check(shutil.which(tool), "%s is missing (Debian package %s: tests/install-deps.sh test)"
              % (tool, deb))
    work = tempfile.mkdtemp(prefix="m2p-it-debian-package-")
    atexit.register(shutil.rmtree, work, True)
    config = os.path.join(ctx.build_dir, "CPackConfig.cmake")
    check(os.path.isfile(config), "%s is missing: configure the build again" % config)
    out_dir = os.path.join(work, "out")
    r = subprocess.run(["cpack", "--config", config, "-G", "DEB", "-B", out_dir],
                       capture_output=True, text=True, cwd=ctx.build_dir, timeout=300)
    if r.returncode != 0:
        # cpack's own logs (a failed build of the preinstall target, dpkg-shlibdeps) are in
        # the temporary directory, which goes away: quote them.
        logs = ""
        for top, _, names in os.walk(out_dir):
            for name in names:
                if name.endswith(".log"):
                    logs += "\n--- %s:\n%s" % (name, read_text(os.path.join(top, name),
                                                                  name)[-3000:])
        harness.fail("cpack -G DEB exited %s:\n%s%s%s" % (r.returncode, r.stdout[-2000:],
                                                          r.stderr[-2000:], logs))
    debs = [f for f in os.listdir(out_dir) if f.endswith(".deb")]
    check(len(debs) == 1, "cpack made %s, not one .deb" % debs)
    deb = os.path.join(out_dir, debs[0])
    root = os.path.join(work, "root")
    run(["dpkg-deb", "-x", deb, root], "dpkg-deb -x")
    control = os.path.join(work, "control")
    run(["dpkg-deb", "-e", deb, control], "dpkg-deb -e")
    _built.update(deb=deb, root=root, control=control)
    harness.note("package: %s" % debs[0])
    return deb, root


def read_text(path, what):
    check(os.path.isfile(path), "the package has no %s" % what)
    with open(path) as f:
        return f.read()


def control_fields(deb):
    fields = {}
    for line in run(["dpkg-deb", "-f", deb], "dpkg-deb -f").splitlines():
        m = re.match(r"^([A-Za-z-]+): ?(.*)$", line)
        if m:
            fields[m.group(1)] = m.group(2)
    return fields


def depends_names(depends):
    """The package names of a Depends field, alternatives included, versions dropped."""
    return [alt.strip().split(" ")[0] for dep in depends.split(",") for alt in dep.split("|")
            if alt.strip()]


def project_version():
    with open(os.path.join(REPO, "CMakeLists.txt")) as f:
        m = re.search(r"project\(m2p-engine VERSION (\S+)", f.read())
    check(m, "no project version in CMakeLists.txt")
    return m.group(1)


def test_control_and_dependencies(ctx):
    deb, _ = package(ctx)
    harness.note(run(["dpkg-deb", "-I", deb], "dpkg-deb -I"))
    fields = control_fields(deb)
    check(fields.get("Package") == "m2p-engine", "Package: %s" % fields.get("Package"))
    version = fields.get("Version", "")
    check(version.split("-")[0] == project_version(),
          "Version %s is not the project's %s" % (version, project_version()))
    arch = run(["dpkg", "--print-architecture"], "dpkg --print-architecture").strip()
    check(fields.get("Architecture") == arch, "Architecture %s, not %s"
          % (fields.get("Architecture"), arch))
    names = depends_names(fields.get("Depends", ""))
    for library, pattern in RUNTIME_LIBRARIES.items():
        check(any(re.fullmatch(pattern, n) for n in names),
              "Depends names no package for %s: %s" % (library, fields.get("Depends")))
    check("adduser" in names, "Depends lacks adduser (postinst runs it)")
    dev = [n for n in names if n.endswith("-dev")]
    check(not dev, "Depends names development packages: %s" % dev)
    conffiles = read_text(os.path.join(_built["control"], "conffiles"), "conffiles").split()
    check(conffiles == [ENV_FILE], "conffiles are %s, not [%s]" % (conffiles, ENV_FILE))
    for script in ("postinst", "prerm", "postrm"):
        path = os.path.join(_built["control"], script)
        check(os.access(path, os.X_OK), "%s is missing or not executable" % script)
        run(["sh", "-n", path], "sh -n %s" % script)


def test_package_files(ctx):
    deb, _ = package(ctx)
    listing = run(["dpkg-deb", "-c", deb], "dpkg-deb -c").splitlines()
    entries = {}
    for line in listing:
        parts = line.split(None, 5)
        check(len(parts) == 6, "unexpected dpkg-deb -c line: %s" % line)
        mode, owner, name = parts[0], parts[1], parts[5].split(" -> ")[0]
        check(owner == "root/root", "%s is owned by %s" % (name, owner))
        entries[name] = mode
    files = [n for n, mode in entries.items() if not mode.startswith("d")]
    strays = [n for n in files if not n.startswith(PACKAGE_DIRS)]
    check(not strays, "files outside %s: %s" % (", ".join(PACKAGE_DIRS), strays))
    wanted = ["." + BINARY, "." + ENV_FILE, "." + UNIT,
              "./usr/share/doc/m2p-engine/README.md",
              "./usr/share/doc/m2p-engine/operations.md"] + \
        ["./usr/share/m2p-engine/pools/" + p for p in SHIPPED_POOLS] + \
        ["./usr/share/m2p-engine/scripts/" + s for s in SHIPPED_SCRIPTS]
    for name in wanted:
        check(name in files, "the package lacks %s" % name)
    check(entries["." + BINARY] == "-rwxr-xr-x",
          "%s has mode %s" % (BINARY, entries["." + BINARY]))
    for name in ("." + ENV_FILE, "." + UNIT):
        check(entries[name] == "-rw-r--r--", "%s has mode %s" % (name, entries[name]))


def unit_settings(text):
    return {m.group(1): m.group(2) for m in re.finditer(r"^(\w+)=(.*)$", text, flags=re.M)}


def test_unit_matches_package(ctx):
    _, root = package(ctx)
    text = read_text(root + UNIT, UNIT)
    check("/usr/local" not in text, "the packaged unit still names /usr/local:\n%s" % text)
    unit = unit_settings(text)
    check(unit.get("ExecStart") == "%s --env-file %s" % (BINARY, ENV_FILE),
          "ExecStart=%s" % unit.get("ExecStart"))
    doc = unit.get("Documentation", "")
    check(doc.startswith("file:") and os.path.isfile(root + doc[len("file:"):]),
          "Documentation=%s is not a file of the package" % doc)
    example = os.path.join(REPO, "examples", ".env.example")
    check(os.path.isfile(root + ENV_FILE) and filecmp.cmp(root + ENV_FILE, example, shallow=False),
          "%s is not examples/.env.example" % ENV_FILE)
    postinst = read_text(os.path.join(_built["control"], "postinst"), "postinst")
    for key in ("User", "Group"):
        check(re.search(r"\b%s\b" % re.escape(unit.get(key, "?")), postinst),
              "postinst does not create %s=%s of the unit" % (key, unit.get(key)))
    tool = shutil.which("systemd-analyze")
    check(tool, "systemd-analyze is missing (Debian package systemd: tests/install-deps.sh)")
    # verify insists that ExecStart exists: the extracted binary stands in for /usr/bin's.
    path = os.path.join(ctx.tmp, "m2p-engine.service")
    with open(path, "w") as f:
        f.write(text.replace("ExecStart=" + BINARY, "ExecStart=" + root + BINARY))
    r = subprocess.run([tool, "verify", path], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
          "systemd-analyze verify (status %s):\n%s%s" % (r.returncode, r.stdout, r.stderr))


def run_packaged(ctx, root, *args):
    """The extracted binary from a directory that is neither the tree nor the package root."""
    r = subprocess.run([root + BINARY] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, cwd=ctx.tmp, env=ctx.engine_env(),
                       timeout=120)
    return r.returncode, r.stdout, r.stderr


def test_packaged_engine_finds_its_scripts(ctx):
    _, root = package(ctx)
    share = root + "/usr/share/m2p-engine"
    rc, out, err = run_packaged(ctx, root, "--check")
    check(rc == 0, "--check exited %s:\n%s%s" % (rc, out, err))
    for pool in SHIPPED_POOLS:
        check(os.path.join(share, "pools", pool) in out,
              "--check did not load %s from %s:\n%s" % (pool, share, out))
    check(os.path.join(share, "scripts", "rewards.lua") in out,
          "--check did not use the packaged rules:\n%s" % out)
    rc, out, err = run_packaged(ctx, root, "--check", "--env-file", root + ENV_FILE)
    check(rc == 0, "--check --env-file %s exited %s:\n%s" % (ENV_FILE, rc, err))
    rc, out, err = run_packaged(ctx, root, "--script-test",
                                os.path.join(REPO, "tests", "fixtures"))
    check(rc == 0, "--script-test exited %s:\n%s%s" % (rc, out[-3000:], err[-2000:]))
    check(" 0 failed" in out, "--script-test verdict: %s" % out.splitlines()[-1:])


STUB = """#!/bin/sh
# Stand-in for %(name)s: records the call; user, group and statoverride live in files.
echo "%(name)s $*" >> "$STUB_STATE/calls"
case "%(name)s $1" in
  "getent passwd") test -e "$STUB_STATE/user-$2" ;;
  "getent group") test -e "$STUB_STATE/group-$2" ;;
  "addgroup "*) for a; do last=$a; done; touch "$STUB_STATE/group-$last" ;;
  "adduser "*) for a; do last=$a; done; touch "$STUB_STATE/user-$last" ;;
  "dpkg-statoverride --list") test -e "$STUB_STATE/override" ;;
  "dpkg-statoverride --update") touch "$STUB_STATE/override" ;;
  "dpkg-statoverride --remove") rm -f "$STUB_STATE/override" ;;
esac
"""


def run_maintainer_script(ctx, state, script, *args):
    stubs = os.path.join(ctx.tmp, "stubs")
    if not os.path.isdir(stubs):
        os.makedirs(stubs)
        for name in ("getent", "adduser", "addgroup", "dpkg-statoverride", "systemctl",
                     "deb-systemd-invoke", "deb-systemd-helper", "invoke-rc.d"):
            with open(os.path.join(stubs, name), "w") as f:
                f.write(STUB % {"name": name})
            os.chmod(os.path.join(stubs, name), 0o755)
    env = {"PATH": stubs + ":/usr/bin:/bin", "STUB_STATE": state}
    path = os.path.join(_built["control"], script)
    check(os.path.isfile(path), "the package has no %s" % script)
    run(["sh", path] + list(args),
        "%s %s" % (script, " ".join(args)), env=env)
    calls_file = os.path.join(state, "calls")
    if not os.path.exists(calls_file):
        return []
    with open(calls_file) as f:
        calls = f.read().splitlines()
    os.unlink(calls_file)
    return calls


def test_maintainer_scripts(ctx):
    _, root = package(ctx)
    unit = unit_settings(read_text(root + UNIT, UNIT))
    user, group = unit.get("User"), unit.get("Group")
    state = os.path.join(ctx.tmp, "state")
    os.makedirs(state)
    calls = run_maintainer_script(ctx, state, "postinst", "configure", "")
    harness.note("postinst calls: %s" % calls)
    check(any(c.startswith("adduser --system") and c.endswith(" " + user) for c in calls),
          "postinst did not create the system user %s: %s" % (user, calls))
    check(os.path.exists(os.path.join(state, "group-" + group)),
          "postinst did not create the group %s: %s" % (group, calls))
    check("dpkg-statoverride --update --add root %s 0640 %s" % (group, ENV_FILE) in calls,
          "postinst did not make %s readable by %s only: %s" % (ENV_FILE, group, calls))
    again = run_maintainer_script(ctx, state, "postinst", "configure", "")
    made = [c for c in again if c.startswith(("adduser", "addgroup", "dpkg-statoverride --update"))]
    check(not made, "a second postinst created again: %s" % made)
    # An upgrade, a removal and a purge: none enables or starts the service.
    calls = again + run_maintainer_script(ctx, state, "postinst", "configure", "0.0.1-1")
    for script, arg in (("prerm", "remove"), ("postrm", "remove"), ("postrm", "purge")):
        calls += run_maintainer_script(ctx, state, script, arg)
    started = [c for c in calls if re.search(r"\b(enable|start|restart|--now)\b", c)
               and "try-restart" not in c]
    check(not started, "a maintainer script enables or starts the service: %s" % started)
    check(not os.path.exists(os.path.join(state, "override")),
          "purge left the statoverride of %s" % ENV_FILE)


harness.main(globals())
