// fuzz_blob_decode.cpp — libFuzzer target: an MoE expert blob (blob_decode.h).
//
// Input: byte 0 picks the layout (planes4, planes4_msb, or concat:<dtype> for every dtype name, valid
// or not); bytes 1-2 give F and D (multiples of 8 from 8 to 256, so odd block counts and widths that are
// not multiples of 32 occur); the rest is the blob, repeated to fill read_bytes. The blob buffer is
// exactly read_bytes long and the slot exactly decoded_bytes long, so any read or write past what the
// layout declares is an ASan report. A concat blob is also decoded in place (src == slot).
// Contract under test: blob_layout_parse accepts or refuses with a Status; for an accepted layout the
// offsets are ordered and inside decoded_bytes <= read_bytes <= blob_bytes (page multiples); blob_decode
// returns OK or BAD_FILE and never touches bytes outside its buffers.
#include <algorithm>
#include <string>
#include <vector>

#include "blob_decode.h"
#include "fuzz_util.h"
#include "quant.h"

using namespace edge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    edge_fuzz::Bytes in{data, size};
    const uint32_t pick = in.u8();
    std::string layout;
    if (pick % 16 == 0) layout = "planes4";
    else if (pick % 16 == 1) layout = "planes4_msb";
    else if (pick % 16 == 2) layout = "planes4x";
    else {
        const uint32_t dt = pick % (EDGE_DTYPE_COUNT + 1);  // one past the last: an unknown name
        layout = std::string("concat:") + (dt < EDGE_DTYPE_COUNT ? dtype_traits(dt).name : "q9_9");
    }
    const int64_t F = 8 * (1 + in.u8() % 32), D = 8 * (1 + in.u8() % 32);
    BlobLayout l;
    Status st = blob_layout_parse(layout, F, D, &l);
    if (!st.is_ok()) {
        FUZZ_CHECK(!st.msg.empty());
        return 0;
    }
    FUZZ_CHECK(l.gate_off == 0 && l.up_off >= (size_t)F * l.ffn_row_bytes && l.down_off >= l.up_off + (size_t)F * l.ffn_row_bytes);
    FUZZ_CHECK(l.decoded_bytes == l.down_off + (size_t)D * l.down_row_bytes);
    FUZZ_CHECK(l.read_bytes % 4096 == 0 && l.blob_bytes % 4096 == 0 && l.read_bytes <= l.blob_bytes);
    if (l.kind == BLOB_CONCAT) FUZZ_CHECK(l.decoded_bytes <= l.read_bytes);
    else FUZZ_CHECK(l.c_off <= l.read_bytes && l.b_off + 8 * l.nb <= l.c_off);

    std::vector<uint8_t> blob(l.read_bytes);
    const size_t have = in.left();
    for (size_t i = 0; i < blob.size(); ++i) blob[i] = have ? data[in.at + i % have] : 0;
    std::vector<uint8_t> slot(l.decoded_bytes);
    st = blob_decode(l, blob.data(), slot.data());
    FUZZ_CHECK(st.is_ok() || (st.code == Code::BAD_FILE && !st.msg.empty()));
    if (l.kind == BLOB_CONCAT) {
        Status in_place = blob_decode(l, blob.data(), blob.data());
        FUZZ_CHECK(in_place.code == st.code);
        if (st.is_ok()) FUZZ_CHECK(std::equal(slot.begin(), slot.end(), blob.begin()));
    }
    return 0;
}
