// adapter.cpp — see adapter.h.
#include "adapter.h"

#include <cmath>
#include <cstring>

#include "quant.h"

namespace edge {

namespace {

const char* const kStems[AT_COUNT] = {"attn_q", "attn_k", "attn_v", "attn_o", "ffn_gate", "ffn_up", "ffn_down"};

Status bad_adapter(const std::string& path, const std::string& msg) {
    return status_error(Code::BAD_FILE, path + ": " + msg);
}

// Digits [p, q) of name as a number (at most 6 digits); false if empty or not digits.
bool parse_index(const std::string& name, size_t p, size_t q, int64_t* out) {
    if (q == std::string::npos || q == p || q - p > 6) return false;
    int64_t i = 0;
    for (size_t k = p; k < q; ++k) {
        if (name[k] < '0' || name[k] > '9') return false;
        i = i * 10 + (name[k] - '0');
    }
    *out = i;
    return true;
}

// "blk.{i}.{stem}.{part}" -> layer, target, expert = -1, part (0 lora_a, 1 lora_b, 2 bias);
// "blk.{i}.exp.{e}.{stem}.{part}" (stem ffn_gate / ffn_up / ffn_down) -> the same with expert = e.
// false if not of either form.
bool parse_name(const std::string& name, int64_t* layer, int64_t* expert, int* target, int* part) {
    if (name.compare(0, 4, "blk.") != 0) return false;
    size_t p = 4, q = name.find('.', p);
    int64_t i = 0, e = -1;
    if (!parse_index(name, p, q, &i)) return false;
    if (name.compare(q + 1, 4, "exp.") == 0) {
        p = q + 5, q = name.find('.', p);
        if (!parse_index(name, p, q, &e)) return false;
    }
    size_t r = name.find('.', q + 1);
    if (r == std::string::npos) return false;
    const std::string stem = name.substr(q + 1, r - q - 1), suffix = name.substr(r + 1);
    int t = -1;
    for (int k = e < 0 ? 0 : AT_GATE; k < AT_COUNT; ++k)
        if (stem == kStems[k]) t = k;
    int pt = suffix == "lora_a" ? 0 : suffix == "lora_b" ? 1 : suffix == "bias" ? 2 : -1;
    if (t < 0 || pt < 0) return false;
    *layer = i, *expert = e, *target = t, *part = pt;
    return true;
}

std::string base_name_of(const EdgeFile& a) {
    const MetaValue* v = a.get("adapter.base_name");
    return v && v->type == META_STR ? v->s : std::string("another model");
}

// One tensor t (part 0 lora_a, 1 lora_b, 2 bias) of adapter a for a [rows, cols] matrix, merged into *term:
// a bias adds s·bias; a lora_a appends its rank to A and c·lora_b to B (a lora_b is merged with its lora_a).
Status merge_tensor(const EdgeFile& a, const TensorInfo& t, int part, int64_t rows, int64_t cols, float s, float c,
                    AdapterTerm* term, AdapterSet* out) {
    const std::string& path = a.path();
    if (t.dtype != EDGE_DTYPE_F32) return bad_adapter(path, "tensor '" + t.name + "' must be f32, not " + dtype_traits(t.dtype).name);
    const float* d = reinterpret_cast<const float*>(t.data);
    const std::string stem = t.name.substr(0, t.name.size() - (part == 2 ? 5 : 7));
    if (part == 2) {
        if (t.shape.size() != 1 || t.shape[0] != rows)
            return bad_adapter(path, strfmt("tensor '%s' should be [%lld]", t.name.c_str(), (long long)rows));
        if (term->bias.empty()) term->bias.assign((size_t)rows, 0.f);
        for (int64_t o = 0; o < rows; ++o) term->bias[(size_t)o] += s * d[o];
        return Status::ok();
    }
    if (part == 1) {  // checked with its lora_a
        if (!a.find(stem + ".lora_a")) return bad_adapter(path, "tensor '" + t.name + "' has no " + stem + ".lora_a");
        return Status::ok();
    }
    const TensorInfo* tb = a.find(stem + ".lora_b");
    if (!tb) return bad_adapter(path, "tensor '" + t.name + "' has no " + stem + ".lora_b");
    if (t.shape.size() != 2 || t.shape[1] != cols || t.shape[0] < 1 || t.shape[0] > 4096)
        return bad_adapter(path, strfmt("tensor '%s' should be [rank, %lld] with 1 <= rank <= 4096", t.name.c_str(), (long long)cols));
    const int64_t r = t.shape[0];
    if (tb->dtype != EDGE_DTYPE_F32 || tb->shape.size() != 2 || tb->shape[0] != rows || tb->shape[1] != r)
        return bad_adapter(path, strfmt("tensor '%s.lora_b' should be f32 [%lld, %lld]", stem.c_str(), (long long)rows, (long long)r));
    const float* db = reinterpret_cast<const float*>(tb->data);
    const int64_t R0 = term->rank, R = R0 + r;
    term->a.insert(term->a.end(), d, d + r * cols);  // A = [A_old; A_j]
    std::vector<float> b((size_t)(rows * R));        // B = [B_old | c·B_j]
    for (int64_t o = 0; o < rows; ++o) {
        if (R0) std::memcpy(&b[(size_t)(o * R)], &term->b[(size_t)(o * R0)], (size_t)R0 * sizeof(float));
        for (int64_t j = 0; j < r; ++j) b[(size_t)(o * R + R0 + j)] = c * db[o * r + j];
    }
    term->b.swap(b);
    term->rank = R;
    if (R > out->max_rank) out->max_rank = R;
    return Status::ok();
}

// One adapter file's tensors checked against the base shapes; merged into *out with user scale s.
Status merge_one(const EdgeFile& base, const EdgeFile& a, const AdapterShape& shape, float s, AdapterSet* out) {
    const std::string& path = a.path();
    std::string type;
    const MetaValue* tv = a.get("general.type");
    if (!tv || tv->type != META_STR || tv->s != "adapter")
        return bad_adapter(path, "not an adapter (general.type is not \"adapter\"); adapters are written by `edgerun train`");
    int64_t sum = 0;
    const MetaValue* cv = a.get("adapter.base_checksum");
    if (!cv || cv->type != META_I64) return bad_adapter(path, "adapter.base_checksum is missing or not an integer");
    sum = cv->i;
    const uint32_t want = base_checksum(base);
    if ((uint64_t)sum != (uint64_t)want)
        return status_error(Code::INVALID_ARGUMENT,
                            strfmt("%s was trained on %s (base checksum %08llx), not on %s (checksum %08x); load it with the model "
                                   "it was trained on, or train a new adapter for this one",
                                   path.c_str(), base_name_of(a).c_str(), (unsigned long long)sum, base.path().c_str(), want));
    double lora_scale = 0.0;
    bool has_lora = false;
    for (const TensorInfo& t : a.tensors()) has_lora |= t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".lora_a") == 0;
    if (has_lora) {
        int64_t rank = 0;
        double alpha = 0;
        EDGE_TRY(a.get_i64("adapter.rank", &rank));
        EDGE_TRY(a.get_f64("adapter.alpha", &alpha));
        if (rank < 1 || !std::isfinite(alpha)) return bad_adapter(path, strfmt("adapter.rank %lld / adapter.alpha must be >= 1 / finite", (long long)rank));
        lora_scale = alpha / (double)rank;
    }
    const float c = (float)(lora_scale * s);
    for (const TensorInfo& t : a.tensors()) {
        int64_t il, e;
        int tg, part;
        if (!parse_name(t.name, &il, &e, &tg, &part))
            return bad_adapter(path, "tensor '" + t.name + "' is not blk.{i}.{attn_q|attn_k|attn_v|attn_o|ffn_gate|ffn_up|ffn_down}."
                                     "{lora_a|lora_b|bias} or blk.{i}.exp.{e}.{ffn_gate|ffn_up|ffn_down}.{lora_a|lora_b|bias}");
        if (il >= shape.n_layers)
            return bad_adapter(path, strfmt("tensor '%s': the base has %lld layers", t.name.c_str(), (long long)shape.n_layers));
        int64_t rows, cols;
        AdapterTerm* term;
        if (e < 0) {
            rows = shape.rows[(size_t)(il * AT_COUNT + tg)], cols = shape.cols[(size_t)(il * AT_COUNT + tg)];
            if (rows == 0)
                return bad_adapter(path, "tensor '" + t.name + "' targets a matrix the base's layer does not have (a MoE layer's FFN: "
                                         "its experts' matrices are blk.{i}.exp.{e}.ffn_*)");
            term = &out->at(il, tg);
        } else {
            if (shape.is_moe.empty() || !shape.is_moe[(size_t)il])
                return bad_adapter(path, strfmt("tensor '%s' targets an expert, but layer %lld of the base is not a mixture-of-experts layer",
                                                t.name.c_str(), (long long)il));
            if (e >= shape.n_experts)
                return bad_adapter(path, strfmt("tensor '%s': the base's MoE layers have %lld experts", t.name.c_str(),
                                                (long long)shape.n_experts));
            const int j = tg - AT_GATE;
            rows = shape.expert_rows[j], cols = shape.expert_cols[j];
            term = &out->expert_at(il, e, j);
        }
        EDGE_TRY(merge_tensor(a, t, part, rows, cols, s, c, term, out));
    }
    return Status::ok();
}

}  // namespace

const char* adapter_target_stem(int t) { return t >= 0 && t < AT_COUNT ? kStems[t] : "?"; }

uint32_t base_checksum(const EdgeFile& f) {
    uint32_t crc = 0;
    for (const TensorInfo& t : f.tensors()) {
        std::string line = t.name + ":" + dtype_traits(t.dtype).name + ":";
        for (size_t i = 0; i < t.shape.size(); ++i) line += (i ? "x" : "") + std::to_string(t.shape[i]);
        line += strfmt(":%08x\n", t.crc32);
        crc = crc32_update(crc, line.data(), line.size());
    }
    return crc;
}

bool AdapterSet::has_expert_terms() const {
    for (const AdapterTerm& t : expert_terms)
        if (t.rank > 0 || !t.bias.empty()) return true;
    return false;
}

int64_t AdapterSet::bytes() const {
    int64_t n = 0;
    for (const std::vector<AdapterTerm>* v : {&terms, &expert_terms})
        for (const AdapterTerm& t : *v) n += (int64_t)(t.a.size() + t.b.size() + t.bias.size()) * (int64_t)sizeof(float);
    return n;
}

Status adapters_load(const EdgeFile& base, const AdapterShape& shape, const std::vector<AdapterSpec>& specs, AdapterSet* out) {
    *out = AdapterSet();
    out->n_layers = shape.n_layers;
    out->n_experts = shape.n_experts;
    out->terms.resize((size_t)(shape.n_layers * AT_COUNT));
    out->expert_terms.resize((size_t)(shape.n_layers * shape.n_experts * 3));
    for (const AdapterSpec& s : specs) {
        if (!std::isfinite(s.scale))
            return status_error(Code::INVALID_ARGUMENT, s.path + ": the adapter's scale must be a finite number");
        std::unique_ptr<EdgeFile> a;
        EDGE_TRY(edge_file_open(s.path, &a));
        EDGE_TRY(a->verify(nullptr));  // small: every CRC is checked
        EDGE_TRY(merge_one(base, *a, shape, s.scale, out));
    }
    return Status::ok();
}

}  // namespace edge
