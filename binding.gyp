{
  "target_defaults": {
    "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-ffp-contract=off"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
    "cflags!": ["-fno-exceptions"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_CPP_EXCEPTIONS", "NAPI_VERSION=8"]
  },
  "targets": [
    {
      "target_name": "ss_portable",
      "type": "static_library",
      "sources": ["native/src/isa_portable.cc"]
    },
    {
      "target_name": "ss_avx2",
      "type": "static_library",
      "conditions": [["target_arch=='x64'", {
        "sources": ["native/src/isa_avx2.cc"],
        "cflags_cc": ["-mavx2", "-mfma", "-mf16c"]
      }]]
    },
    {
      "target_name": "ss_avx512",
      "type": "static_library",
      "conditions": [["target_arch=='x64'", {
        "sources": ["native/src/isa_avx512.cc"],
        "cflags_cc": ["-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512vnni", "-mavx2", "-mfma", "-mf16c", "-Wno-uninitialized", "-Wno-maybe-uninitialized"]
      }]]
    },
    {
      "target_name": "slipstream",
      "dependencies": ["ss_portable", "ss_avx2", "ss_avx512"],
      "sources": ["native/src/addon.cc", "native/src/ops.cc", "native/src/pool.cc", "native/src/train_ops.cc", "native/src/train_addon.cc", "native/src/train_image.cc", "native/src/train_image_addon.cc", "native/src/sgemm.cc", "native/src/sgemm_addon.cc", "native/src/bench.cc", "native/src/image_ops.cc", "native/src/image_addon.cc"],
      "libraries": ["-lpthread"]
    }
  ]
}
