"""Mixture-of-experts support of the converter (docs/MOE.md).

    blobs.py        expert blob encodings (concat:<dtype>, planes4 / planes4_msb), bit-exact encode/decode
    variants.py     --expert-variants -> moe.variants / variant_blob / variant_layout
    predictor.py    pre-attention predictor: router folded with ffn_norm, ridge LSQ fit, recall
    expert_bits.py  per-expert sensitivity and the moe.plan for --expert-bits
    calib.py        calibration pass through the models/moe reference (routing, activations, importance)
    source.py       float32 weights of an MoE source by our names (per-expert or fused experts)
    export.py       MoeExport: the MoE steps of `edgeconv export`
"""
