import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  avcCodecString,
  BoxError,
  childBoxes,
  concatBytes,
  findBox,
  findBoxes,
  parseEsds,
  parseInit,
  readBoxes,
  readFullBoxHeader,
  u8,
  u16,
  u32,
  u64,
  writeBox,
  writeFullBox,
} from "../../packager-node/src/media/index.ts";
import { defaultFixtureDir } from "../../packager-node/src/source/index.ts";
import { handAvcC, handEsds } from "./media-builders.ts";

const init360 = new Uint8Array(readFileSync(join(defaultFixtureDir, "360p", "init.mp4")));

describe("media/boxes", () => {
  it("iterates sibling boxes with 32-bit, 64-bit and to-the-end sizes", () => {
    const small = writeBox("free", u8(1), u8(2));
    const large = concatBytes([
      u32(1),
      Uint8Array.from("skip", (c) => c.charCodeAt(0)),
      u64(20),
      u32(7),
    ]);
    const toEnd = concatBytes([u32(0), Uint8Array.from("mdat", (c) => c.charCodeAt(0)), u16(9)]);
    const boxes = readBoxes(concatBytes([small, large, toEnd]));
    assert.deepEqual(
      boxes.map((b) => [b.type, b.start, b.size, b.headerSize]),
      [
        ["free", 0, 10, 8],
        ["skip", 10, 20, 16],
        ["mdat", 30, 10, 8],
      ],
    );
    assert.equal(boxes[1]!.contentStart, 26);
  });

  it("rejects truncated and impossible sizes with the offset in the message", () => {
    const ok = writeBox("free", u32(0));
    assert.throws(() => readBoxes(ok.subarray(0, 6)), /truncated box header at offset 0/);
    assert.throws(() => readBoxes(ok.subarray(0, 10)), /has size 12 but only 10 bytes remain/);
    const tooSmall = concatBytes([ok, u32(4), Uint8Array.from("free", (c) => c.charCodeAt(0))]);
    assert.throws(
      () => readBoxes(tooSmall),
      (e: unknown) => {
        assert.ok(e instanceof BoxError);
        assert.match(e.message, /"free" at offset 12 has size 4 < header 8/);
        return true;
      },
    );
  });

  it("builds full boxes with version and flags and reads them back", () => {
    const box = writeFullBox("tfdt", 1, 0x123456, u64(5n));
    const [ref] = readBoxes(box);
    assert.deepEqual(readFullBoxHeader(box, ref!), {
      version: 1,
      flags: 0x123456,
      payloadStart: 12,
    });
    assert.throws(() => writeBox("toolong", u8(0)), /4 characters/);
  });

  it("finds nested boxes along a path in the fixture init", () => {
    const mdhds = findBoxes(init360, ["moov", "trak", "mdia", "mdhd"]);
    assert.equal(mdhds.length, 2);
    const stsd = findBox(init360, ["moov", "trak", "mdia", "minf", "stbl", "stsd"])!;
    assert.deepEqual(
      childBoxes(init360, stsd).map((b) => b.type),
      ["avc1"],
    );
    assert.equal(findBox(init360, ["moov", "nope"]), undefined);
  });
});

describe("media/init", () => {
  it("reads timescales, sample entries, sizes and the CODECS string from the fixture", () => {
    const info = parseInit(init360);
    assert.equal(info.majorBrand, "iso6");
    assert.ok(info.compatibleBrands.includes("cmfc"));
    assert.equal(info.codecs, "avc1.42c01e,mp4a.40.2");
    const [video, audio] = info.tracks;
    assert.deepEqual(
      { ...video, defaults: undefined },
      {
        trackId: 1,
        handlerType: "vide",
        kind: "video",
        timescale: 15360,
        sampleEntry: "avc1",
        codec: "avc1.42c01e",
        width: 640,
        height: 360,
        defaults: undefined,
      },
    );
    assert.equal(audio!.timescale, 48000);
    assert.equal(audio!.codec, "mp4a.40.2");
    assert.equal(audio!.channelCount, 1, "channels come from the AudioSpecificConfig");
    assert.equal(audio!.sampleRate, 48000);
    assert.deepEqual([...info.defaults.keys()], [1, 2]);
  });

  it("derives avc1 strings from hand-made avcC boxes", () => {
    const box = handAvcC(0x64, 0x00, 0x1f);
    assert.equal(avcCodecString("avc1", box, readBoxes(box)[0]!), "avc1.64001f");
    const bad = writeBox("avcC", u8(2), u8(0x42), u8(0), u8(0x1e));
    assert.throws(() => avcCodecString("avc1", bad, readBoxes(bad)[0]!), /configurationVersion 2/);
  });

  it("reads AAC, escaped object types, explicit rates and non-AAC esds", () => {
    // AudioSpecificConfig from [value, bit width] fields, MSB first, zero-padded.
    const asc = (...fields: [number, number][]) => {
      const bits = fields.map(([v, n]) => v.toString(2).padStart(n, "0")).join("");
      const padded = bits.padEnd(Math.ceil(bits.length / 8) * 8, "0");
      return Array.from({ length: padded.length / 8 }, (_, i) =>
        Number.parseInt(padded.slice(i * 8, i * 8 + 8), 2),
      );
    };
    const esds = (oti: number, config?: number[]) => {
      const box = handEsds(oti, config ? Uint8Array.from(config) : undefined);
      return parseEsds(box, readBoxes(box)[0]!);
    };
    assert.deepEqual(esds(0x40, asc([2, 5], [4, 4], [2, 4])), {
      codec: "mp4a.40.2",
      objectTypeIndication: 0x40,
      audioObjectType: 2,
      sampleRate: 44100,
      channelCount: 2,
    });
    // rate index 15: an explicit 24-bit sampling rate follows
    const he = esds(0x40, asc([5, 5], [15, 4], [48000, 24], [1, 4]));
    assert.equal(he.codec, "mp4a.40.5");
    assert.equal(he.sampleRate, 48000);
    assert.equal(he.channelCount, 1);
    // escaped object type: 31, then 6 bits + 32 (42 = USAC)
    assert.equal(esds(0x40, asc([31, 5], [10, 6], [3, 4], [1, 4])).codec, "mp4a.40.42");
    assert.deepEqual(esds(0x6b), { codec: "mp4a.6b", objectTypeIndication: 0x6b });
    assert.throws(() => esds(0x40), /AAC without DecoderSpecificInfo/);
  });

  it("says what is missing when the init has no moov", () => {
    assert.throws(() => parseInit(writeBox("ftyp", u32(0), u32(0))), /no moov/);
  });
});
