// PNG files through pngjs: 8-bit RGB pixels out (the benchmark and loss-curve charts), and any
// PNG in as 8-bit RGBA.

import { PNG } from 'pngjs';

export { crc32 } from 'node:zlib';

/**
 * Encodes 8-bit RGB pixels (row-major, 3 bytes each) as a PNG file: truecolour, filter type 0
 * (None) on every row, zlib's default compression.
 */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  if (rgb.length !== width * height * 3) throw new Error(`encodePng: ${rgb.length} bytes for ${width}x${height} RGB`);
  const png = new PNG({ width: 0, height: 0 });
  png.width = width;
  png.height = height;
  png.data = Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength);
  return PNG.sync.write(png, {
    colorType: 2, // truecolour, from RGB input as is
    inputColorType: 2,
    inputHasAlpha: false,
    bitDepth: 8,
    filterType: 0,
    deflateLevel: 6,
    deflateStrategy: 0,
  });
}

/** Decodes a PNG file (any colour type, bit depth or interlacing) to 8-bit RGBA pixels, row-major. */
export function decodePng(png: Uint8Array): { width: number; height: number; rgba: Uint8Array } {
  const img = PNG.sync.read(Buffer.from(png.buffer, png.byteOffset, png.byteLength));
  return { width: img.width, height: img.height, rgba: new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength) };
}
