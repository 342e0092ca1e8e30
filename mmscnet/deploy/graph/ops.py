"""Graph operators that torch has no exportable form of, each with its
PyTorch implementation and its ONNX translation (passed to torch's exporter
by :func:`mmscnet.deploy.graph.onnx.export_graph`).

``grouped_nms(boxes (G, R, 4), scores (G, R), iou_threshold) -> (K, 2)``:
NMS within each of G groups, as ONNX's ``NonMaxSuppression`` runs it with
its batch dimension (the rows: group, box index). Each group is computed on
its own boxes as they are, so no group's result depends on which others
share the call (an image on its batch, a class on the others): mmcv's
``batched_nms`` keeps groups apart by offsetting their boxes, which in one
call over a whole batch would grow with the batch size and round the
coordinates more coarsely. A box of zero area suppresses nothing, in
PyTorch and in both runtimes: the export forwards use such boxes for
padding and for entries that do not take part.
"""
import torch

NAMESPACE = 'mmscnet'
# NonMaxSuppression's max_output_boxes_per_class: no limit.
_NO_LIMIT = 2**62


@torch.library.custom_op(f'{NAMESPACE}::grouped_nms', mutates_args=())
def grouped_nms(boxes: torch.Tensor, scores: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    from torchvision.ops import nms
    out = [boxes.new_zeros((0, 2), dtype=torch.long)]
    for g in range(boxes.shape[0]):
        keep = nms(boxes[g], scores[g], iou_threshold)
        out.append(torch.stack([torch.full_like(keep, g), keep], 1))
    return torch.cat(out)


@grouped_nms.register_fake
def _grouped_nms_fake(boxes, scores, iou_threshold):
    size = torch.library.get_ctx().new_dynamic_size()
    # NMS keeps at most its input; saying so keeps later bounds finite.
    torch._check(size <= boxes.shape[0] * boxes.shape[1])
    return boxes.new_empty((size, 2), dtype=torch.long)


def _grouped_nms_onnx(boxes, scores, iou_threshold: float):
    from onnxscript import opset18 as op
    selected = op.NonMaxSuppression(boxes, op.Unsqueeze(scores, [1]),
                                    op.Constant(value_int=_NO_LIMIT),
                                    op.Constant(value_float=iou_threshold))
    # (group, class = 0, box) -> (group, box)
    return op.Concat(
        op.Slice(selected, [0], [1], [1]),
        op.Slice(selected, [2], [3], [1]),
        axis=1)


ONNX_TRANSLATIONS = {
    torch.ops.mmscnet.grouped_nms.default: _grouped_nms_onnx,
}
