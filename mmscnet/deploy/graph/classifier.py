"""A whole mmpretrain ImageClassifier as one exportable graph:

    images (N, 3, H, W) -> scores (N, C)

backbone, neck and head as ``predict`` runs them, then the softmax of
``ClsHead``'s predictions; the label is the arg-max, taken at run time
(:mod:`mmscnet.deploy.runtime`). H and W are free.
"""
import torch.nn as nn
import torch.nn.functional as F

from .onnx import image_dims


def check_exportable(classifier):
    """Raise a ValueError naming what is supported unless the graph computes
    what ``classifier.predict`` computes."""
    from mmpretrain.models.classifiers import ImageClassifier
    from mmpretrain.models.heads import ClsHead
    name = type(classifier).__name__
    if (not isinstance(classifier, ImageClassifier)
            or type(classifier).predict is not ImageClassifier.predict):
        raise ValueError(
            f'cannot export classifier type {name}: the classifier export '
            'handles ImageClassifier (backbone, neck, head)')
    head = classifier.head
    kind = type(head).__name__
    if (not isinstance(head, ClsHead)
            or type(head).predict is not ClsHead.predict
            or type(head)._get_predictions is not ClsHead._get_predictions):
        raise ValueError(
            f'cannot export head {kind}: the graph computes ClsHead\'s '
            'predict (the head\'s forward, then the softmax over classes), '
            'as LinearClsHead and the other single-label ClsHead subclasses '
            'do; multi-label heads (a sigmoid per class) and heads with a '
            'predict of their own are refused')


class ClassifierExport(nn.Module):
    """The classifier as ``images -> scores`` (the softmax of the logits)."""

    task = 'classification'
    input_names = ['images']
    output_names = ['scores']
    min_size = 32

    def __init__(self, classifier):
        super().__init__()
        check_exportable(classifier)
        self.classifier = classifier.eval()

    def example(self, n, h, w):
        import torch
        return (torch.randn(n, 3, h, w), )

    def dynamic_shapes(self, max_batch=64, max_size=4096):
        return (image_dims(self.min_size, max_batch, max_size), )

    def spec(self):
        return dict(task=self.task)

    def forward(self, images):
        return F.softmax(self.classifier(images, mode='tensor'), dim=1)
