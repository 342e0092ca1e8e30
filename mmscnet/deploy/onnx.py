"""ONNX export of the backbone (four stage maps) or a whole mmpretrain
classifier (logits), and its check in ONNX Runtime:
``tools/deployment/pytorch2onnx.py`` and ``benchmark.py``'s ONNX row. The
OpenVINO runtime (:mod:`.openvino`) starts from the same file."""
import torch
import torch.nn as nn


class ClassifierLogits(nn.Module):
    """An mmpretrain classifier as ``normalised images -> class logits``
    (``mode='tensor'``: backbone, neck and head, no softmax), for export."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        out = self.classifier(x, mode='tensor')
        return out[-1] if isinstance(out, (tuple, list)) else out


def export_onnx(module, path, example, dynamic=True, output_names=None):
    """Export ``module`` (eval mode) for ``example`` input to ``path`` with
    torch's ONNX exporter; with ``dynamic`` the batch size and image size are
    free (32 to 4096 pixels a side). Returns the output names."""
    module.eval()
    with torch.no_grad():
        outs = module(example)
    n = len(outs) if isinstance(outs, (tuple, list)) else 1
    output_names = output_names or ([f'stage{i + 1}' for i in range(n)]
                                    if n > 1 else ['output'])
    shapes = None
    if dynamic:
        dim = torch.export.Dim
        shapes = ({
            0: dim('batch', min=1, max=1024),
            2: dim('height', min=32, max=4096),
            3: dim('width', min=32, max=4096)
        }, )
    torch.onnx.export(
        module, (example, ),
        path,
        input_names=['input'],
        output_names=output_names,
        dynamic_shapes=shapes,
        dynamo=True,
        external_data=False,
        verbose=False)
    return output_names


def export_graph(module, inputs, path, input_names, output_names,
                 dynamic_shapes):
    """A whole model (``module(*inputs)``, eval mode) to ``path`` with torch's
    exporter (``dynamo=True``), sizes free as ``dynamic_shapes`` says.

    Sizes stay symbolic where the exporter would otherwise decide on them
    (``prefer_deferred_runtime_asserts_over_guards``); the ONNX file's input
    dimensions are then checked to be free, since a size read into a
    constant during tracing would freeze the graph to the export size."""
    import onnx

    from .ops import ONNX_TRANSLATIONS
    module.eval()
    with torch.no_grad():
        program = torch.export.export(
            module,
            tuple(inputs),
            dynamic_shapes=dynamic_shapes,
            strict=False,
            prefer_deferred_runtime_asserts_over_guards=True)
    torch.onnx.export(
        program,
        tuple(inputs),
        path,
        input_names=input_names,
        output_names=output_names,
        dynamo=True,
        external_data=False,
        custom_translation_table=ONNX_TRANSLATIONS,
        verbose=False)
    graph = onnx.load(path, load_external_data=False).graph
    for value, shapes in zip(graph.input, dynamic_shapes):
        dims = value.type.tensor_type.shape.dim
        frozen = [i for i in shapes if dims[i].HasField('dim_value')]
        if frozen:
            raise RuntimeError(
                f'{path}: input {value.name} has fixed dimensions {frozen} '
                f'({[d.dim_value for d in dims]}) that were exported as '
                'free: the graph would be wrong at any other size')


def onnx_session(path, threads=None):
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])


def onnxruntime_runner(path, threads=None):
    """``run(array) -> [arrays]``: the ONNX file in ONNX Runtime's CPU
    provider (the calling convention :func:`runtime_max_rel_diff` and the
    tools time)."""
    session = onnx_session(path, threads)
    return lambda x: session.run(None, {'input': x})


def runtime_max_rel_diff(module, run, x):
    """Largest ``max|runtime - torch| / max|torch|`` over the outputs for
    input ``x``; ``run`` is a runtime's ``array -> [arrays]``."""
    with torch.no_grad():
        ref = module(x)
    ref = ref if isinstance(ref, (tuple, list)) else [ref]
    outs = run(x.numpy())
    if len(outs) != len(ref):
        raise ValueError(f'the runtime gave {len(outs)} outputs, PyTorch '
                         f'{len(ref)}: not the same model')
    return max(
        float((torch.from_numpy(o) - r).abs().max() /
              r.abs().max().clamp_min(1e-12)) for o, r in zip(outs, ref))
