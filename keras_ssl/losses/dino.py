"""DINO's self-distillation cross-entropy (Caron et al., 2021)."""

from keras import ops


def dino_loss(student_logits, teacher_logits, center, student_temperature=0.1, teacher_temperature=0.04):
    """Cross-entropy between sharpened, centred teacher outputs and student outputs.

    Formula (Caron et al., 2021, Algorithm 1):
        P_t(v) = softmax((g_t(v) - center) / teacher_temperature)     # global views only, no gradient
        P_s(v) = softmax(g_s(v) / student_temperature)                # every view
        loss = mean over pairs (t, s) with t != s of  mean_i -sum_k P_t(t)_ik log P_s(s)_ik

    Args:
        student_logits: list of (N, K) outputs, one per view; the first
            `len(teacher_logits)` are the global views the teacher also saw.
        teacher_logits: list of (N, K) teacher outputs on the global views.
        center: (K,) running mean of the teacher's outputs.
    """
    if len(student_logits) < 2 or not 1 <= len(teacher_logits) <= len(student_logits):
        raise ValueError(
            "Expected at least 2 student views and between 1 and that many teacher views. "
            f"Received: {len(student_logits)} student and {len(teacher_logits)} teacher views"
        )
    center = ops.cast(center, "float32")
    targets = [
        ops.stop_gradient(ops.softmax((ops.cast(t, "float32") - center) / teacher_temperature, axis=-1))
        for t in teacher_logits
    ]
    log_probs = [ops.log_softmax(ops.cast(s, "float32") / student_temperature, axis=-1) for s in student_logits]
    total, terms = 0.0, 0
    for i, target in enumerate(targets):
        for j, log_prob in enumerate(log_probs):
            if i == j:
                continue  # the same view is never its own target
            total = total + ops.mean(-ops.sum(target * log_prob, axis=-1))
            terms += 1
    return total / terms
