// OpenAI's Images API on an image model (src/diffusion/service.ts):
//
//   POST /v1/images/generations   {prompt, n, size, response_format: "b64_json", ...}
//   POST /v1/images/edits         multipart/form-data (image file, prompt, ...) as OpenAI's clients
//                                 send it, or JSON with `image` as base64 / a data: URL
//
// Extensions, as Stable Diffusion servers name them: negative_prompt, steps
// (num_inference_steps), guidance_scale, guidance_rescale, seed, scheduler, strength (edits).
// `stream: true` answers with server-sent events: `image_generation.progress` after every
// denoising step, then one `image_generation.completed` per picture, then [DONE].
// Requests queue and run one at a time; a client that disconnects while waiting is dropped.

import { randomInt } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ImageRequest } from '../diffusion/pipeline.ts';
import { loraParameter } from '../diffusion/lora.ts';
import type { ImageClient } from '../diffusion/service.ts';
import { ImageServiceError } from '../diffusion/service.ts';
import { decodeImage, encodePng, type RgbImage } from '../formats/image.ts';
import { FormatError } from '../formats/errors.ts';
import { ApiError, badRequest, RETRY_AFTER_S } from './errors.ts';
import { SseStream } from './sse.ts';
import { isObject, optBool, optNumber, type Body } from './validate.ts';

function optString(b: Body, name: string): string | undefined {
  const v = b[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw badRequest(`'${name}' must be a string, got ${Array.isArray(v) ? 'array' : typeof v}`, name, 'invalid_type');
  return v;
}

/** Form fields arrive as strings: numbers and booleans are read back into JSON types first. */
function fromForm(form: FormData): { body: Body; image: Blob | null } {
  const body: Body = {};
  let image: Blob | null = null;
  for (const [k, v] of form.entries()) {
    if (k === 'image' || k === 'image[]') {
      if (typeof v === 'string') throw badRequest("'image' must be a file (multipart/form-data), not a text field", 'image', 'invalid_type');
      if (image) throw badRequest('send one image: several images per edit are not supported', 'image');
      image = v;
    } else if (k === 'mask') throw badRequest("'mask' (inpainting) is not supported; image-to-image changes the whole picture", 'mask', 'unsupported');
    else if (typeof v === 'string') {
      const t = v.trim();
      body[k] = /^-?\d+(\.\d+)?(e-?\d+)?$/i.test(t) && !['prompt', 'negative_prompt', 'size', 'model', 'user', 'scheduler'].includes(k) ? Number(t) : t === 'true' ? true : t === 'false' ? false : v;
    }
  }
  return { body, image };
}

function parseRequest(b: Body, images: ImageClient, edit: boolean): { req: ImageRequest; stream: boolean } {
  const model = optString(b, 'model');
  if (model !== undefined && model !== images.modelName) {
    throw new ApiError(404, `the image model '${model}' does not exist; this server serves '${images.modelName}'`, 'model', 'model_not_found');
  }
  const prompt = optString(b, 'prompt');
  if (prompt === undefined) throw badRequest("'prompt' is required", 'prompt', 'missing');
  if (prompt.trim() === '') throw badRequest("'prompt' must not be empty", 'prompt');
  const fmt = optString(b, 'response_format');
  if (fmt !== undefined && fmt !== 'b64_json') throw badRequest(`'response_format' must be 'b64_json' (this server does not host image URLs), got '${fmt}'`, 'response_format');
  const n = optNumber(b, 'n', { int: true, min: 1, max: 10 }) ?? 1;
  let width: number | undefined, height: number | undefined;
  const size = optString(b, 'size');
  if (size !== undefined && size !== 'auto') {
    const m = /^(\d{1,5})x(\d{1,5})$/.exec(size);
    if (!m) throw badRequest(`'size' must be WIDTHxHEIGHT (e.g. '${images.nativeSize}x${images.nativeSize}') or 'auto', got '${size}'`, 'size');
    width = Number(m[1]);
    height = Number(m[2]);
    for (const [name, v] of [['width', width], ['height', height]] as const) {
      if (v % images.sizeMultiple || v < images.sizeMultiple || v > 2048) throw badRequest(`'size': the ${name} must be a multiple of ${images.sizeMultiple} from ${images.sizeMultiple} to 2048, got ${v}`, 'size');
    }
  }
  const steps = optNumber(b, 'steps', { int: true, min: 1, max: 200 }) ?? optNumber(b, 'num_inference_steps', { int: true, min: 1, max: 200 }) ?? 20;
  const guidance = optNumber(b, 'guidance_scale', { min: 0, max: 50 }) ?? 7.5;
  const guidanceRescale = optNumber(b, 'guidance_rescale', { min: 0, max: 1 }) ?? 0;
  const seed = optNumber(b, 'seed', { int: true, min: 0, max: 2 ** 53 - 1 }) ?? randomInt(2 ** 32);
  const scheduler = optString(b, 'scheduler');
  const strength = edit ? optNumber(b, 'strength', { above: 0, max: 1 }) : undefined;
  if (!edit && b.strength !== undefined && b.strength !== null) throw badRequest("'strength' applies to /v1/images/edits only", 'strength');
  const stream = optBool(b, 'stream') ?? false;
  return { req: { prompt, negativePrompt: optString(b, 'negative_prompt'), steps, guidance, guidanceRescale, scheduler, seed, width, height, n, strength }, stream };
}

function decodeInit(bytes: Uint8Array): RgbImage {
  try {
    return decodeImage(bytes, 'image');
  } catch (e) {
    if (e instanceof FormatError) throw badRequest(`'image' ${e.message.replace(/^image: /, '')}`, 'image');
    throw e;
  }
}

function serviceError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof ImageServiceError) {
    if (e.kind === 'invalid') {
      const param = e.field === 'image' ? 'image' : e.field === 'width' || e.field === 'height' ? 'size' : e.field ?? null;
      return badRequest(e.message, param);
    }
    if (e.kind === 'full') return new ApiError(429, e.message, null, 'queue_full', undefined, { 'retry-after': String(RETRY_AFTER_S) });
    return new ApiError(500, e.message, null, 'internal_error');
  }
  return new ApiError(500, `internal server error: ${(e as Error).message}`, null, 'internal_error');
}

async function run(images: ImageClient, req: ImageRequest, stream: boolean, reply: FastifyReply): Promise<unknown> {
  const abort = new AbortController();
  const res = reply.raw;
  const onClose = () => {
    if (!res.writableEnded) abort.abort();
  };
  res.on('close', onClose);
  const created = Math.floor(Date.now() / 1000);
  const item = (img: RgbImage) => ({ b64_json: encodePng(img, { parameters: `${req.prompt}\nSteps: ${req.steps}, CFG scale: ${req.guidance}, Seed: ${req.seed}, Size: ${img.width}x${img.height}, Model: ${images.modelName}${images.loras?.length ? `, ${loraParameter(images.loras)}` : ''}`, Software: 'slipstream' }).toString('base64'), revised_prompt: req.prompt });
  if (!stream) {
    try {
      const r = await images.generate(req, undefined, abort.signal);
      return { created, seed: req.seed, data: r.images.map(item), usage: { steps: r.timesteps.length } };
    } catch (e) {
      throw serviceError(e);
    } finally {
      res.off('close', onClose);
    }
  }
  reply.hijack();
  const sse = new SseStream(res);
  try {
    const r = await images.generate(req, (p) => sse.send({ type: 'image_generation.progress', step: p.step, total: p.total, elapsed_ms: Math.round(p.elapsedMs) }), abort.signal);
    r.images.forEach((img, i) => sse.send({ type: 'image_generation.completed', index: i, created, seed: req.seed, size: `${img.width}x${img.height}`, ...item(img) }));
    sse.done();
  } catch (e) {
    if (!abort.signal.aborted) sse.fail(serviceError(e));
  } finally {
    res.off('close', onClose);
  }
  return reply;
}

/** Registers /v1/images/generations and /v1/images/edits, and the multipart body parser edits need. */
export function registerImageRoutes(app: FastifyInstance, images: ImageClient): void {
  // OpenAI's clients send edits as multipart/form-data; Node's own fetch implementation parses it.
  app.addContentTypeParser(/^multipart\/form-data/i, { parseAs: 'buffer' }, (req, raw, done) => {
    new Response(new Uint8Array(raw as Buffer), { headers: { 'content-type': String(req.headers['content-type']) } })
      .formData()
      .then((form) => done(null, form))
      .catch((e: Error) => done(badRequest(`the multipart/form-data body cannot be read: ${e.message}`, null, 'invalid_body')));
  });

  app.post('/v1/images/generations', async (req, reply) => {
    if (!isObject(req.body)) throw badRequest('the request body must be a JSON object', null, 'invalid_type');
    const { req: r, stream } = parseRequest(req.body, images, false);
    return run(images, r, stream, reply);
  });

  app.post('/v1/images/edits', async (req, reply) => {
    let body: Body, initImage: RgbImage;
    if (req.body instanceof FormData) {
      const f = fromForm(req.body);
      if (!f.image) throw badRequest("'image' is required: the picture to start from (PNG or JPEG)", 'image', 'missing');
      body = f.body;
      initImage = decodeInit(new Uint8Array(await f.image.arrayBuffer()));
    } else {
      if (!isObject(req.body)) throw badRequest('the request body must be a JSON object or multipart/form-data', null, 'invalid_type');
      body = req.body;
      if (body.mask !== undefined && body.mask !== null) throw badRequest("'mask' (inpainting) is not supported; image-to-image changes the whole picture", 'mask', 'unsupported');
      const img = optString(body, 'image');
      if (img === undefined) throw badRequest("'image' is required: the picture to start from, base64 (or a data: URL) in JSON, or a file in multipart/form-data", 'image', 'missing');
      const b64 = img.replace(/^data:image\/[a-z]+;base64,/i, '');
      if (!/^[A-Za-z0-9+/=\s]+$/.test(b64)) throw badRequest("'image' must be base64 (or a data:image/...;base64, URL)", 'image');
      initImage = decodeInit(Buffer.from(b64, 'base64'));
    }
    const { req: r, stream } = parseRequest(body, images, true);
    if (body.size !== undefined && body.size !== null && body.size !== 'auto') throw badRequest("'size' is the init image's size for edits; leave it out", 'size');
    return run(images, { ...r, initImage, strength: r.strength ?? 0.8 }, stream, reply);
  });
}
