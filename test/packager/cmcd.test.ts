import assert from "node:assert/strict";
import { cmcdFromRequest, parseCmcd } from "../../packager-node/src/cmcd/cmcd.ts";
import { formatCmsdDynamic, formatCmsdStatic } from "../../packager-node/src/cmcd/cmsd.ts";
import { SessionTable } from "../../packager-node/src/cmcd/sessions.ts";

describe("packager CMCD parsing (CTA-5004)", () => {
  it("reads every v1 key with its type: integers, decimals, quoted strings, tokens, bare booleans", () => {
    const { data, errors } = parseCmcd(
      'bl=21300,br=3200,bs,cid="faec5fc2-ac30-11eabb37-0242ac130002",d=4004,dl=18500,mtp=48100,nor="..%2F300kbps%2Ftrack.m4v",nrr="12323-48763",ot=v,pr=1.08,rtp=12000,sf=d,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",st=v,su,tb=6000,v=1',
    );
    assert.deepEqual(errors, []);
    assert.deepEqual(data, {
      custom: {},
      bl: 21300,
      br: 3200,
      bs: true,
      cid: "faec5fc2-ac30-11eabb37-0242ac130002",
      d: 4004,
      dl: 18500,
      mtp: 48100,
      nor: "..%2F300kbps%2Ftrack.m4v",
      nrr: "12323-48763",
      ot: "v",
      pr: 1.08,
      rtp: 12000,
      sf: "d",
      sid: "6e2fb550-c457-11e9-bb97-0800200c9a66",
      st: "v",
      su: true,
      tb: 6000,
      v: 1,
    });
  });

  it("keeps commas and escaped quotes inside strings, and custom hyphenated keys", () => {
    const { data, errors } = parseCmcd(
      'cid="a,b \\"c\\"",com.example-flag,com.example-n=5,com.example-s="x"',
    );
    assert.deepEqual(errors, []);
    assert.equal(data.cid, 'a,b "c"');
    assert.deepEqual(data.custom, {
      "com.example-flag": true,
      "com.example-n": 5,
      "com.example-s": "x",
    });
  });

  it("drops malformed keys with a reason and keeps the rest", () => {
    const { data, errors } = parseCmcd(
      `br=fast,bl=-5,ot=x,sid=unquoted,zz=1,d=4000,cid="${"x".repeat(65)}",su=maybe,tb`,
    );
    assert.deepEqual(data, { custom: {}, d: 4000 });
    assert.deepEqual(errors, [
      "br: expected a non-negative integer",
      "bl: expected a non-negative integer",
      "ot: expected one of m, a, v, av, i, c, tt, k, o",
      "sid: expected a quoted string",
      "zz: unknown key",
      "cid: longer than 64 chars",
      "su: expected a bare boolean key",
      "tb: expected a non-negative integer",
    ]);
  });

  it("reports an unterminated string", () => {
    const { errors } = parseCmcd('sid="abc');
    assert.deepEqual(errors, ["sid: unterminated string"]);
  });

  it("merges the four headers and the query parameter; none at all is undefined", () => {
    assert.equal(cmcdFromRequest(undefined, {}), undefined);
    const r = cmcdFromRequest("bl=500", {
      "cmcd-request": "bl=1000,mtp=900",
      "cmcd-object": "br=300,d=2000,ot=v",
      "cmcd-status": "bs,rtp=1500",
      "cmcd-session": 'sid="s",sf=h,st=l',
    });
    assert.ok(r);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.data, {
      custom: {},
      bl: 500,
      mtp: 900,
      br: 300,
      d: 2000,
      ot: "v",
      bs: true,
      rtp: 1500,
      sid: "s",
      sf: "h",
      st: "l",
    });
  });
});

describe("packager CMSD formatting (CTA-5006)", () => {
  it("writes CMSD-Static as a dictionary and CMSD-Dynamic as a server entry with parameters", () => {
    assert.equal(
      formatCmsdStatic({
        at: 1700000000000,
        br: 3000,
        d: 2000,
        ht: 120,
        n: "pkg-a",
        ot: "v",
        st: "l",
        custom: { "com.understudy-switch": "pkg-b@42" },
      }),
      'at=1700000000000,br=3000,d=2000,ht=120,n="pkg-a",ot=v,st=l,com.understudy-switch="pkg-b@42"',
    );
    assert.equal(
      formatCmsdDynamic({ n: 'pkg "a"', etp: 5000, rd: 3, custom: { du: true } }),
      '"pkg \\"a\\"";etp=5000;rd=3;du',
    );
    assert.equal(formatCmsdDynamic({ n: "edge-1" }), '"edge-1"');
  });
});

describe("packager CMCD session table", () => {
  it("counts active sessions per rendition, bounded in number and by idle time", () => {
    const t = new SessionTable({ sessionsMax: 2, sessionIdleMs: 1000 });
    t.record(
      { custom: {}, sid: "a", br: 3000, bs: true },
      { streamId: "s", renditionId: "720p" },
      0,
    );
    t.record({ custom: {}, sid: "b" }, { streamId: "s", renditionId: "360p" }, 100);
    t.record({ custom: {}, sid: "a", bl: 900 }, { streamId: "s", renditionId: "360p" }, 200);
    assert.deepEqual(t.demand(300), [
      { streamId: "s", renditionId: "360p", sessions: 2, stalls: 1 },
    ]);
    assert.equal(t.get("a")?.bufferLengthMs, 900);
    assert.equal(t.get("a")?.bitrateKbps, 3000);
    t.record({ custom: {}, sid: "c" }, { streamId: "s" }, 300);
    assert.equal(t.size, 2, "the LRU keeps at most sessionsMax sessions");
    assert.equal(t.has("b"), false);
    assert.deepEqual(t.demand(1250), [{ streamId: "s", renditionId: "", sessions: 1, stalls: 0 }]);
    assert.equal(t.record({ custom: {} }, { streamId: "s" }, 0), undefined);
  });
});
