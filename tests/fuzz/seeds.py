#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ from the fixtures (tests/fixtures/**,
the pools' recorded responses), examples/.env.example and hand-made edge cases (Engine.IO / Socket.IO packets for fuzz_engineio).

Run from the repository root after a fixture changes: python3 tests/fuzz/seeds.py
Seeds are named by content hash, as libFuzzer names what it adds, so a rerun only adds."""
import glob
import hashlib
import json
import os

OUT = "tests/fuzz/corpus"
POOLS = {"cpu-pool": 0, "rplant": 1, "zpool": 2}


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def body_text(body):
    if body is None:
        return ""
    return body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))


def fixtures():
    for path in sorted(glob.glob("tests/fixtures/**/*.json", recursive=True)):
        with open(path, "rb") as f:
            raw = f.read()
        put("fuzz_fixture", raw)
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        pool = POOLS.get(doc.get("pool"))
        for step in doc.get("steps", []) if isinstance(doc, dict) else []:
            r = step.get("response") if isinstance(step, dict) else None
            if not isinstance(r, dict):
                continue
            body = body_text(r.get("body"))
            put("fuzz_json", body)
            if pool is None:
                continue
            headers = "\n".join(f"{k}: {v}" for k, v in (r.get("headers") or {}).items())
            for flags in (pool, pool | 4):
                put("fuzz_pool", bytes([flags]) + f"{r.get('status', 200)}\0{headers}\0{body}".encode())


JSON_EDGES = [
    "", " ", "null", "true", "false", "0", "-0", "1e400", "-1e400", "1e-400", "0.1",
    "9007199254740993", "123456789012345678901234567890123456789012345678901234567890123",
    "1234567890123456789012345678901234567890123456789012345678901234", '"\\u0000"',
    '"a\\u00e9\\ud83d\\ude00"', '"\\ud800"', '"\\udc00x"', '"\xff\xfe"', "[1,2,3", '{"a":1,}',
    '{"a":1} x', '{"a":1}\0', '{"a":1,"a":2}', '{"":null}', "[[]]", "{}", "[]", '[{},[],""]',
    "[" * 64 + "]" * 64, "[" * 65 + "]" * 65, "[" * 200, '{"a":' * 70 + "1" + "}" * 70,
    '"' + "x" * 5000 + '"', "[" + ",".join(["1"] * 3000) + "]",
]

POOL_EDGES = [
    b"\x00200\0content-type: application/json\0{}",
    b"\x01200\0\0[]",
    b"\x02200\0\0null",
    b"\x04429\0retry-after: 30\0",
    b"\x05500\0content-type: text/html\0<html>down</html>",
    b"\x0a200\0\0{\"baseline\":1}\0{\"paid\":1}",
    b"\x08200\0\0not json\0{}",
    b"\x00-1\0\0{}", b"\x0099999999999999999999\0\0{}",
]

ENV_EDGES = [
    "", "\n", "DATABASE_URL=postgresql://u:pw@localhost/db\n",
    "export LOG_LEVEL=debug\nLOG_FORMAT=\"text\"\n", "LOG_LEVEL='info' # comment\r\n",
    "POLL_INTERVAL_SECONDS=-1\n", "POLL_INTERVAL_SECONDS=1e400\n", "POLL_INTERVAL_SECONDS=nan\n",
    "=value\n", "NO_EQUALS\n", "A=\"unterminated\n", "A=\"a\\\"b\\n\"\n", "A=x\0B=y\n",
    "LOG_LEVEL=" + "x" * 9000 + "\n", "   # just a comment\n\n\n", "1BAD=1\n",
    "DATABASE_URL=host=h password='p w' dbname=d\n", "LOG_LEVEL=info\nLOG_LEVEL=error\n",
]

SCRUB_EDGES = [
    ("postgresql://user:secret@localhost/db", "connection to server failed: password secret"),
    ("postgres://user:s%40cret@host:5432/db?sslmode=require", "s@cret s%40cret"),
    ("postgresql://host/db?password=qs&user=u", "qs here"),
    ("host=h user=u password='p w\\' x' dbname=d", "auth failed for 'p w' x'"),
    ("password = spaced dbname=d", "spaced"), ("password=", ""), ("postgresql://:@/", ":@"),
    ("postgresql://u:pw@[::1", "pw"), ("password='unterminated", "unterminated"),
    ("postgresql://u:p@h/d?password=", "p"), ("xpassword=nope", "nope"),
]

ENGINEIO_EDGES = [
    b'0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,'
    b'"pingTimeout":20000,"maxPayload":1000000}',
    b'40{"sid":"wZX3oN0bSVIhsaknAAAI"}', b"2", b"3probe", b"6", b"1", b"2\x1e2\x1e2",
    b'44{"message":"Not authorized"}', b'44/admin,{"message":"x"}', b'42["award",{"ap":1}]',
    b'4312["ok"]', b"43/nsp,7[]", b"41", b"41/nsp,", b"b4AQID",
    b'451-["x",{"_placeholder":true,"num":0}]', b'0{"sid":"' + b"x" * 200 + b'"}',
    b'0{"pingInterval":-1}', b"0{}", b"0", b"", b"\x1e", b"9", b"4",
    b"42" + b"[" * 100 + b"]" * 100, b'4999999999999999999["x"]', b'40\x1e42["a"]\x1e2',
]


def main():
    fixtures()
    for text in JSON_EDGES:
        put("fuzz_json", text)
    for data in POOL_EDGES:
        put("fuzz_pool", data)
    with open("examples/.env.example", "rb") as f:
        put("fuzz_config", f.read())
    for text in ENV_EDGES:
        put("fuzz_config", text)
    for conninfo, text in SCRUB_EDGES:
        put("fuzz_scrub", conninfo + "\0" + text)
    for data in ENGINEIO_EDGES:
        put("fuzz_engineio", data)
    put("fuzz_fixture", b"")
    put("fuzz_fixture", '{"pool":"zpool","steps":[{}]}')
    put("fuzz_fixture", '{"pool":"nope","steps":[{"response":{"status":"x"}}]}')
    put("fuzz_fixture", '{"pool":"cpu-pool","steps":[{"response":{"body":"{"},"expect":{"error":1}}]}')
    put("fuzz_fixture", '{"pool":"rplant","metadata":{"error":"down"},"steps":[{"response":{}}]}')


if __name__ == "__main__":
    main()
