"""Fixtures for Q2_K, Q3_K and IQ4_XS from llama.cpp itself: the libggml-base.so that
node-llama-cpp ships (compat/llamacpp), called through ctypes.

  decode:   random block bytes (every bit pattern, moderate f16 scales) and llama.cpp's
            dequantize_row_* of them, as f32 bits
  quantize: a test tensor (mixed magnitudes, an all-zero block, a constant block, an outlier) and
            llama.cpp's quantization of it (ggml_quantize_chunk without an importance matrix, what
            llama-quantize writes), with its RMSE after llama.cpp's dequantization

Writes test/fixtures/ggml-quants.json. Run from the project root:
  . ../shared/oracle/env.sh && "$ORACLE_PY" scripts/oracle/ggml_quants.py
"""
import base64, ctypes, json, math, os, random, struct

LIB = 'compat/llamacpp/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so'
lib = ctypes.CDLL(LIB)
lib.ggml_quantize_chunk.restype = ctypes.c_size_t
lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
lib.ggml_row_size.restype = ctypes.c_size_t
lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]

# ggml_type, dequantizer, byte offsets of the f16 scales (d, dmin) inside a block
TYPES = {
    'q2_k': (10, 'dequantize_row_q2_K', [80, 82]),
    'q3_k': (11, 'dequantize_row_q3_K', [108]),
    'iq4_xs': (23, 'dequantize_row_iq4_xs', [0]),
}
b64 = lambda b: base64.b64encode(bytes(b)).decode()

def f16bits(v):
    return struct.unpack('<H', struct.pack('<e', v))[0]

def dequant(name, data, n):
    out = (ctypes.c_float * n)()
    src = (ctypes.c_uint8 * len(data)).from_buffer_copy(bytes(data))
    getattr(lib, name)(src, out, ctypes.c_int64(n))
    return out

def test_tensor(n, rnd):
    x = []
    for i in range(n):
        blk = i // 256
        if blk == 0: v = 0.0
        elif blk == 1: v = 1.5
        elif blk == 2: v = 3 + rnd.random()  # all positive
        else: v = rnd.gauss(0, 1) * (1 + (i >> 5) % 5) * 10 ** ((blk % 3) - 2)
        x.append(v)
    x[900] = -50.0
    return struct.unpack(f'<{n}f', struct.pack(f'<{n}f', *x))  # f32 values

rnd = random.Random(20)
fixtures = {}
for t, (gt, deq, scale_at) in TYPES.items():
    bb = lib.ggml_row_size(gt, 256)
    nblk = 6
    raw = bytearray(rnd.getrandbits(8) for _ in range(bb * nblk))
    for k in range(nblk):
        for j, at in enumerate(scale_at):
            h = f16bits((rnd.random() + 0.5) * (0.01 if j == 0 else 0.004) * (-1 if (t != 'q2_k' and k % 2) else 1))
            raw[k * bb + at:k * bb + at + 2] = struct.pack('<H', h)
    y = dequant(deq, raw, 256 * nblk)
    n = 256 * 32
    x = test_tensor(n, rnd)
    xs = (ctypes.c_float * n)(*x)
    q = (ctypes.c_uint8 * (bb * n // 256))()
    size = lib.ggml_quantize_chunk(gt, xs, q, 0, 1, n, None)
    assert size == len(q)
    back = dequant(deq, q, n)
    rmse = math.sqrt(sum((a - b) ** 2 for a, b in zip(x, back)) / n)
    fixtures[t] = {
        'blockBytes': bb,
        'decode': {'bytes': b64(raw), 'f32': b64(struct.pack(f'<{len(y)}f', *y))},
        'quantize': {'src': b64(struct.pack(f'<{n}f', *x)), 'bytes': b64(q), 'rmse': rmse},
    }
    print(t, bb, 'rmse', rmse)

out = {'source': 'llama.cpp libggml-base.so from node-llama-cpp (compat/llamacpp), via ctypes: scripts/oracle/ggml_quants.py', **fixtures}
with open('test/fixtures/ggml-quants.json', 'w') as fh:
    json.dump(out, fh)
