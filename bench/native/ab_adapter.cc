// bench/native/ab.sh: build A's kernel table (ss_a0::table, laid out as revision A's kernels.h)
// as this tree's struct (ss_a::table), field by field, so that the harness (compiled against this
// tree's kernels.h) can call either build. Needs A's table to have every field this tree's has.
#include <cstdint>
namespace a_abi {
#include "a/kernels.h"
}
#include "kernels.h"

namespace ss_a0 { extern const a_abi::ss_kernels table; }

namespace ss_a {
template <class To, class From>
static To fn(From f) { return reinterpret_cast<To>(f); }  // same signatures, A's argument structs
static const a_abi::ss_kernels& A = ss_a0::table;
extern const ss_kernels table = {
    A.name, fn<decltype(ss_kernels::matmul)>(A.matmul), A.binary, A.scale, A.rmsnorm, A.layernorm, A.unary, A.gated,
    fn<decltype(ss_kernels::attention)>(A.attention), A.mr, A.nr, A.quantize_q8, A.f32_to_f16, A.attn_rows,
};
}  // namespace ss_a
