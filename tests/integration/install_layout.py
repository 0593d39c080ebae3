"""Issue 10, install: `cmake --install` into a temporary prefix, then the installed engine.

Checked: bin/m2p-engine, share/m2p-engine/{pools,scripts}, the docs in share/doc/m2p-engine,
the example settings at etc/m2p-engine/m2p-engine.env (a copy of examples/.env.example that
the engine accepts). Run from / with no --pools/--scripts, the installed engine finds its own
scripts (beside the binary: the prefix is not the configured one) for --check and
--script-test; moved to another directory it still does.
"""

import filecmp
import os
import shutil
import subprocess

import harness
from harness import REPO, check

SHIPPED_POOLS = ("cpu-pool.lua", "rplant.lua", "zpool.lua")


def install(ctx, prefix):
    r = subprocess.run(["cmake", "--install", ctx.build_dir, "--prefix", prefix],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "cmake --install failed (%s):\n%s%s"
          % (r.returncode, r.stdout[-2000:], r.stderr[-2000:]))


def run_installed(ctx, prefix, *args):
    """The installed binary, from /, with a clean environment; (status, stdout, stderr)."""
    r = subprocess.run([os.path.join(prefix, "bin", "m2p-engine")] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd="/",
                       env=ctx.engine_env(), timeout=120)
    return r.returncode, r.stdout, r.stderr


def check_runs_from_root(ctx, prefix):
    share = os.path.join(prefix, "share", "m2p-engine")
    rc, out, err = run_installed(ctx, prefix, "--check")
    check(rc == 0, "--check from / exited %s:\n%s%s" % (rc, out, err))
    for pool in SHIPPED_POOLS:
        check(os.path.join(share, "pools", pool) in out,
              "--check did not load %s from %s:\n%s" % (pool, share, out))
    check(os.path.join(share, "scripts", "rewards.lua") in out,
          "--check did not use the installed rules:\n%s" % out)
    rc, out, err = run_installed(ctx, prefix, "--script-test",
                                 os.path.join(REPO, "tests", "fixtures"))
    check(rc == 0, "--script-test from / exited %s:\n%s%s" % (rc, out[-3000:], err[-2000:]))
    check(" 0 failed" in out, "--script-test verdict: %s" % out.splitlines()[-1:])


def test_install_into_a_prefix(ctx):
    prefix = os.path.join(ctx.tmp, "prefix")
    install(ctx, prefix)
    for rel in ["bin/m2p-engine", "share/m2p-engine/scripts/convert.lua",
                "share/m2p-engine/scripts/rewards.lua", "share/doc/m2p-engine/README.md",
                "share/doc/m2p-engine/operations.md", "share/doc/m2p-engine/pools.md",
                "share/doc/m2p-engine/examples/m2p-engine.service",
                "etc/m2p-engine/m2p-engine.env"] + \
               ["share/m2p-engine/pools/" + p for p in SHIPPED_POOLS]:
        check(os.path.isfile(os.path.join(prefix, rel)), "not installed: %s" % rel)
    check(os.access(os.path.join(prefix, "bin/m2p-engine"), os.X_OK), "the binary is not "
          "executable")
    env_file = os.path.join(prefix, "etc/m2p-engine/m2p-engine.env")
    check(filecmp.cmp(env_file, os.path.join(REPO, "examples", ".env.example"), shallow=False),
          "etc/m2p-engine/m2p-engine.env is not examples/.env.example")
    check_runs_from_root(ctx, prefix)
    # The example settings file is valid as it ships.
    rc, out, err = run_installed(ctx, prefix, "--check", "--env-file", env_file)
    check(rc == 0, "--check --env-file %s exited %s:\n%s" % (env_file, rc, err))


def test_moved_install_finds_its_scripts(ctx):
    first = os.path.join(ctx.tmp, "first")
    install(ctx, first)
    moved = os.path.join(ctx.tmp, "elsewhere", "opt")
    os.makedirs(os.path.dirname(moved))
    shutil.move(first, moved)
    check_runs_from_root(ctx, moved)


harness.main(globals())
