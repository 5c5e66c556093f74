import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  concatBytes,
  findBox,
  findBoxes,
  isSyncSampleFlags,
  parseFragment,
  parseInit,
  readBoxes,
  readFullBoxHeader,
  readTfdt,
  rewriteFragment,
  splitFragments,
  splitInit,
  u32,
  writeBox,
} from "../../packager-node/src/media/index.ts";
import { defaultFixtureDir } from "../../packager-node/src/source/index.ts";
import { handFragment } from "./media-builders.ts";

const SYNC = 0x02000000;
const NON_SYNC = 0x01010000;

function fixtureFile(rendition: string, name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(defaultFixtureDir, rendition, name)));
}

/** Sample bytes the first trun of traf `index` points at (data offset relative to the moof). */
function trunData(frag: Uint8Array, index: number, length: number): Uint8Array {
  const moof = findBox(frag, ["moof"])!;
  const trun = findBoxes(frag, ["moof", "traf", "trun"])[index]!;
  const { payloadStart } = readFullBoxHeader(frag, trun);
  const dataOffset = new DataView(frag.buffer, frag.byteOffset).getInt32(payloadStart + 4);
  return frag.subarray(moof.start + dataOffset, moof.start + dataOffset + length);
}

describe("media/fragments", () => {
  const init = fixtureFile("360p", "init.mp4");
  const media = fixtureFile("360p", "media.m4s");
  const defaults = parseInit(init).defaults;

  it("splits an ffmpeg fragmented file into init and 16 contiguous 0.5 s fragments", () => {
    const whole = concatBytes([init, media]);
    const { init: head, mediaStart } = splitInit(whole);
    assert.deepEqual(head, init);
    assert.equal(mediaStart, init.length);
    const frags = splitFragments(whole, mediaStart);
    assert.equal(frags.length, 16);
    let videoAt = 0n;
    let audioAt = 0n;
    frags.forEach((f, i) => {
      const info = parseFragment(f.bytes, defaults);
      assert.equal(info.sequenceNumber, i + 1);
      const [v, a] = info.tracks;
      assert.equal(v!.baseMediaDecodeTime, videoAt, `video tfdt of fragment ${i}`);
      assert.equal(a!.baseMediaDecodeTime, audioAt, `audio tfdt of fragment ${i}`);
      assert.equal(v!.durationTicks, 7680, "15 frames of 512 ticks = 0.5 s at 15360");
      assert.equal(info.independent, i % 4 === 0, `fragment ${i} independence`);
      videoAt += BigInt(v!.durationTicks);
      audioAt += BigInt(a!.durationTicks);
    });
    assert.equal(videoAt, 8n * 15360n);
    assert.equal(audioAt, 8n * 48000n, "375 AAC frames: audio loops without drift");
  });

  it("attaches leading styp/prft to the next fragment and rejects broken sequences", () => {
    const a = handFragment(1, [{ trackId: 1, samples: [{ duration: 10, size: 3 }], fill: 1 }]);
    const styp = writeBox("styp", u32(0x6d736468), u32(0));
    const frags = splitFragments(concatBytes([a, styp, a]));
    assert.equal(frags.length, 2);
    assert.equal(frags[1]!.start, a.length);
    assert.equal(frags[1]!.moof.start, a.length + styp.length);
    const moofOnly = a.subarray(0, readBoxes(a)[0]!.end);
    assert.throws(() => splitFragments(moofOnly), /moof at offset 0 is not followed by an mdat/);
    const mdatOnly = a.subarray(readBoxes(a)[0]!.end);
    assert.throws(() => splitFragments(mdatOnly), /mdat at offset 0 has no moof/);
    assert.throws(() => splitFragments(concatBytes([init, a])), /init boxes in media/);
    assert.throws(() => splitFragments(concatBytes([a, styp])), /belong to no fragment/);
    assert.throws(() => splitInit(a), /no moov/);
  });

  it("reads sample durations and flags from trun, tfhd defaults or trex defaults", () => {
    const frag = handFragment(7, [
      {
        trackId: 1,
        tfdt: { version: 1, value: 90_000n },
        firstSampleFlags: SYNC,
        defaultSampleFlags: NON_SYNC,
        trunVersion: 1,
        samples: [
          { duration: 100, size: 5, cto: 200 },
          { duration: 101, size: 6, cto: -100 },
        ],
        fill: 0xaa,
      },
      // no durations anywhere in the fragment: trex default (1024) applies
      { trackId: 2, tfdt: { version: 0, value: 48_000n }, samples: [{ size: 4 }], fill: 0xbb },
    ]);
    const trex = new Map([
      [
        2,
        {
          trackId: 2,
          defaultSampleDescriptionIndex: 1,
          defaultSampleDuration: 1024,
          defaultSampleSize: 0,
          defaultSampleFlags: NON_SYNC,
        },
      ],
    ]);
    const info = parseFragment(frag, trex);
    assert.equal(info.sequenceNumber, 7);
    const [v, a] = info.tracks;
    assert.deepEqual(v!.samples, [
      { duration: 100, size: 5, flags: SYNC, compositionOffset: 200 },
      { duration: 101, size: 6, flags: NON_SYNC, compositionOffset: -100 },
    ]);
    assert.equal(v!.durationTicks, 201);
    assert.equal(v!.tfdtVersion, 1);
    assert.equal(v!.startsWithSync, true);
    assert.equal(a!.durationTicks, 1024);
    assert.equal(a!.baseMediaDecodeTime, 48_000n);
    assert.equal(a!.startsWithSync, false, "trex default flags say non-sync");
    assert.equal(info.independent, false);
    assert.throws(() => parseFragment(frag), /track 2: no sample duration .* trex/);
  });

  it("classifies sample flags as sync or not", () => {
    assert.equal(isSyncSampleFlags(SYNC), true);
    assert.equal(isSyncSampleFlags(0), true);
    assert.equal(isSyncSampleFlags(NON_SYNC), false);
    assert.equal(isSyncSampleFlags(0x01000000), false, "depends on others");
  });

  it("rewrites v1 tfdt and mfhd in place without touching the input or the samples", () => {
    const frag = splitFragments(media)[5]!.bytes;
    const before = frag.slice();
    const out = rewriteFragment(frag, {
      sequenceNumber: 4_000_000_000,
      baseMediaDecodeTime: (trackId, current) => current + (trackId === 1 ? 122_880n : 384_000n),
    });
    assert.deepEqual(frag, before, "input unchanged");
    assert.equal(out.length, frag.length);
    const a = parseFragment(frag, defaults);
    const b = parseFragment(out, defaults);
    assert.equal(b.sequenceNumber, 4_000_000_000);
    assert.equal(b.tracks[0]!.baseMediaDecodeTime, a.tracks[0]!.baseMediaDecodeTime! + 122_880n);
    assert.equal(b.tracks[1]!.baseMediaDecodeTime, a.tracks[1]!.baseMediaDecodeTime! + 384_000n);
    const mdat = (x: Uint8Array) => readBoxes(x).find((box) => box.type === "mdat")!;
    assert.deepEqual(out.subarray(mdat(out).start), frag.subarray(mdat(frag).start));
    assert.deepEqual(
      rewriteFragment(frag, { sequenceNumber: 4_000_000_000 }),
      rewriteFragment(frag, { sequenceNumber: 4_000_000_000 }),
      "deterministic",
    );
  });

  it("keeps a v0 tfdt in place when the value fits and widens it to v1 otherwise", () => {
    const frag = handFragment(1, [
      {
        trackId: 1,
        tfdt: { version: 0, value: 10n },
        samples: [{ duration: 5, size: 3 }],
        fill: 0x11,
      },
      {
        trackId: 2,
        tfdt: { version: 0, value: 20n },
        samples: [{ duration: 7, size: 2 }],
        fill: 0x22,
      },
    ]);
    const small = rewriteFragment(frag, { baseMediaDecodeTime: (_, t) => t + 1000n });
    assert.equal(small.length, frag.length);
    assert.equal(parseFragment(small).tracks[0]!.baseMediaDecodeTime, 1010n);

    const big = rewriteFragment(frag, { baseMediaDecodeTime: (_, t) => t + (1n << 40n) });
    assert.equal(big.length, frag.length + 8, "two tfdt boxes grew by 4 bytes each");
    const info = parseFragment(big);
    assert.deepEqual(
      info.tracks.map((t) => [t.baseMediaDecodeTime, t.tfdtVersion]),
      [
        [(1n << 40n) + 10n, 1],
        [(1n << 40n) + 20n, 1],
      ],
    );
    // data offsets follow the moved mdat: each trun still points at its own samples
    assert.deepEqual(trunData(big, 0, 3), Uint8Array.of(0x11, 0x11, 0x11));
    assert.deepEqual(trunData(big, 1, 2), Uint8Array.of(0x22, 0x22));
    const tfdt = findBox(big, ["moof", "traf", "tfdt"])!;
    assert.equal(readTfdt(big, tfdt).version, 1);
  });

  it("refuses to widen when offsets are absolute and rejects bad values", () => {
    const absolute = handFragment(1, [
      {
        trackId: 1,
        tfhdFlags: 0,
        baseDataOffset: 0n,
        tfdt: { version: 0, value: 0n },
        samples: [{ duration: 1, size: 1 }],
        fill: 0,
      },
    ]);
    assert.throws(
      () => rewriteFragment(absolute, { baseMediaDecodeTime: () => 1n << 33n }),
      /absolute base_data_offset/,
    );
    assert.throws(() => rewriteFragment(absolute, { baseMediaDecodeTime: () => -1n }), /outside/);
    assert.throws(() => rewriteFragment(absolute, { sequenceNumber: 2 ** 32 }), /uint32/);
    const two = concatBytes([absolute, absolute]);
    assert.throws(() => rewriteFragment(two, {}), /exactly one moof in a fragment, found 2/);
  });
});
