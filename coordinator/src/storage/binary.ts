/**
 * Minimal binary encoding for the on-disk formats: unsigned LEB128 varints for
 * terms and indexes (safe integers only, at most 8 bytes), length-prefixed
 * UTF-8 strings, raw byte runs and fixed-width little-endian u32 fields.
 * Hand-rolled so the storage format does not depend on generated code.
 */

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

/** Bytes a varint may take: 8 * 7 = 56 bits covers Number.MAX_SAFE_INTEGER. */
const VARINT_BYTES_MAX = 8;

/** A decode failure: the bytes do not follow the format (a bug or a foreign file, not a torn write). */
export class DecodeError extends Error {
  override readonly name = "DecodeError";
}

/** A growable little-endian byte buffer. */
export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;

  constructor(initialBytes = 256) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }

  get length(): number {
    return this.len;
  }

  private reserve(extra: number): void {
    const need = this.len + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.reserve(1);
    this.buf[this.len++] = v;
  }

  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.len, v, true);
    this.len += 4;
  }

  /** Writes a u32 at an earlier position (used to back-fill record frames). */
  u32At(pos: number, v: number): void {
    this.view.setUint32(pos, v, true);
  }

  varint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0)
      throw new RangeError(`varint must be a non-negative safe integer, got ${v}`);
    this.reserve(VARINT_BYTES_MAX);
    let n = v;
    while (n >= 0x80) {
      this.buf[this.len++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.len++] = n;
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  string(s: string): void {
    const b = textEncoder.encode(s);
    this.varint(b.length);
    this.bytes(b);
  }

  /** The underlying bytes so far (for checksumming in place). */
  peek(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  /** A copy-free view of the written bytes; the writer must not be used afterwards. */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

/** Reads what ByteWriter wrote; every read is bounds-checked and throws DecodeError. */
export class ByteReader {
  private pos: number;

  constructor(
    private readonly buf: Uint8Array,
    start = 0,
    private readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  u8(): number {
    if (this.pos >= this.end) throw new DecodeError("unexpected end of data reading a byte");
    return this.buf[this.pos++]!;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < VARINT_BYTES_MAX; i++) {
      const b = this.u8();
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(result)) throw new DecodeError(`varint ${result} exceeds 2^53`);
        return result;
      }
      scale *= 0x80;
    }
    throw new DecodeError(`varint longer than ${VARINT_BYTES_MAX} bytes`);
  }

  bytes(n: number): Uint8Array {
    if (n > this.remaining) throw new DecodeError(`unexpected end of data reading ${n} bytes`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  string(): string {
    const b = this.bytes(this.varint());
    try {
      return textDecoder.decode(b);
    } catch {
      throw new DecodeError("string is not valid UTF-8");
    }
  }

  /**
   * Everything up to the end, as a plain Uint8Array copy the caller owns, so
   * decoded values never pin a segment buffer (Buffer#slice would not copy).
   */
  rest(): Uint8Array {
    return new Uint8Array(this.bytes(this.remaining));
  }

  expectEnd(what: string): void {
    if (this.remaining !== 0)
      throw new DecodeError(`${this.remaining} unexpected trailing bytes after ${what}`);
  }
}
