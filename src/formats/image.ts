// Images on disk: PNG and JPEG in (image-to-image inputs, training sets), PNG out with the
// generation parameters in text chunks (as other Stable Diffusion tools write them, so a picture
// can be read back into the settings that made it).
//
// Decoding goes through well-kept libraries (pngjs, jpeg-js); the only thing written by hand is
// the text chunk, which pngjs cannot emit: a PNG is a signature and a list of chunks
// (length, type, data, CRC-32 of type + data), and tEXt chunks may sit anywhere between IHDR and
// IEND, so they are spliced in after IHDR.

import { readFileSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { FormatError } from './errors.ts';

/** 8-bit RGB pixels, row-major, 3 bytes a pixel. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function isPng(b: Uint8Array): boolean {
  return b.length >= 8 && PNG_SIGNATURE.equals(b.subarray(0, 8));
}

function isJpeg(b: Uint8Array): boolean {
  return b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}

/** RGBA (alpha composited over white, as viewers show it) -> RGB. */
function dropAlpha(rgba: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < width * height; i++, j += 4) {
    const a = rgba[j + 3]! / 255;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(rgba[j + c]! * a + 255 * (1 - a));
  }
  return out;
}

/** Decodes PNG or JPEG bytes (recognised by their signature). `name` is used in errors. */
export function decodeImage(bytes: Uint8Array, name = 'image'): RgbImage {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (isPng(buf)) {
    let png: PNG;
    try {
      png = PNG.sync.read(buf);
    } catch (e) {
      throw new FormatError(name, `cannot decode the PNG (${(e as Error).message})`);
    }
    return { width: png.width, height: png.height, data: dropAlpha(png.data, png.width, png.height) };
  }
  if (isJpeg(buf)) {
    let img: { width: number; height: number; data: Uint8Array };
    try {
      img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
    } catch (e) {
      throw new FormatError(name, `cannot decode the JPEG (${(e as Error).message})`);
    }
    return { width: img.width, height: img.height, data: dropAlpha(img.data, img.width, img.height) };
  }
  throw new FormatError(name, 'not a PNG or JPEG file (unrecognised signature)');
}

/** Reads a PNG or JPEG file. */
export function readImage(path: string): RgbImage {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FormatError(path, code === 'ENOENT' ? 'cannot read the image (no such file)' : `cannot read the image (${(e as Error).message})`);
  }
  return decodeImage(bytes, path);
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/**
 * PNG bytes of an RGB image, with one tEXt chunk per entry of `text` (keyword: 1-79 Latin-1
 * characters; the value is written as Latin-1, characters outside it replaced by '?').
 */
export function encodePng(img: RgbImage, text: Record<string, string> = {}): Buffer {
  const { width, height, data } = img;
  if (data.length !== width * height * 3) throw new Error(`encodePng: ${data.length} bytes for a ${width}x${height} RGB image (want ${width * height * 3})`);
  const png = new PNG({ width, height, colorType: 2, inputColorType: 2, inputHasAlpha: false });
  png.data = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const body = PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false });
  const chunks: Buffer[] = [];
  for (const [key, value] of Object.entries(text)) {
    if (!/^[\x20-\x7e\xa1-\xff]{1,79}$/.test(key) || key.startsWith(' ') || key.endsWith(' ')) throw new Error(`encodePng: bad text keyword ${JSON.stringify(key)}`);
    chunks.push(chunk('tEXt', Buffer.concat([Buffer.from(key, 'latin1'), Buffer.from([0]), Buffer.from(value.replace(/[^\x00-\xff]/g, '?'), 'latin1')])));
  }
  // Signature (8) + IHDR (4 + 4 + 13 + 4 = 25): the text chunks go right after.
  const ihdrEnd = 8 + 25;
  return Buffer.concat([body.subarray(0, ihdrEnd), ...chunks, body.subarray(ihdrEnd)]);
}

/** Writes an RGB image as PNG, with text chunks. */
export function writePng(path: string, img: RgbImage, text: Record<string, string> = {}): void {
  writeFileSync(path, encodePng(img, text));
}

/** The tEXt chunks of a PNG file's bytes (keyword -> text). */
export function pngText(bytes: Uint8Array): Record<string, string> {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!isPng(b)) throw new FormatError('image', 'not a PNG file');
  const out: Record<string, string> = {};
  for (let p = 8; p + 12 <= b.length; ) {
    const len = b.readUInt32BE(p);
    const type = b.toString('latin1', p + 4, p + 8);
    if (type === 'tEXt') {
      const data = b.subarray(p + 8, p + 8 + len);
      const z = data.indexOf(0);
      if (z > 0) out[data.toString('latin1', 0, z)] = data.toString('latin1', z + 1);
    }
    if (type === 'IEND') break;
    p += 12 + len;
  }
  return out;
}
