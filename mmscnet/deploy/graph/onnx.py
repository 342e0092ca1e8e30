"""The one exporter: a module to ONNX with torch's exporter (``dynamo=True``),
its sizes free. Whole detectors, segmentors and classifiers (:mod:`.detector`,
:mod:`.single_stage`, :mod:`.segmentor`, :mod:`.classifier`;
``tools/deployment/export.py``) and the bare backbone
(``tools/deployment/pytorch2onnx.py``, ``benchmark.py``'s ONNX row).
OpenVINO IR (:mod:`.openvino`) starts from the same file."""
import torch


def image_dims(min_size=32, max_batch=1024, max_size=4096):
    """The free dimensions of an (N, 3, H, W) image input for torch's
    exporter: batch, height and width."""
    dim = torch.export.Dim
    return {
        0: dim('batch', min=1, max=max_batch),
        2: dim('height', min=min_size, max=max_size),
        3: dim('width', min=min_size, max=max_size)
    }


def export_onnx(module, path, example, dynamic=True, output_names=None):
    """The backbone (four stage maps) or another one-input module: ``module``
    with one image input ``example`` through :func:`export_graph`; with
    ``dynamic`` the batch size and image size are free (32 to 4096 pixels
    a side). Returns the output names."""
    module.eval()
    with torch.no_grad():
        outs = module(example)
    n = len(outs) if isinstance(outs, (tuple, list)) else 1
    output_names = output_names or ([f'stage{i + 1}' for i in range(n)]
                                    if n > 1 else ['output'])
    export_graph(module, (example, ), path, ['input'], output_names,
                 (image_dims(), ) if dynamic else None)
    return output_names


def export_graph(module, inputs, path, input_names, output_names,
                 dynamic_shapes):
    """A whole model (``module(*inputs)``, eval mode) to ``path`` with torch's
    exporter (``dynamo=True``), sizes free as ``dynamic_shapes`` says.

    Sizes stay symbolic where the exporter would otherwise decide on them
    (``prefer_deferred_runtime_asserts_over_guards``); the ONNX file's input
    dimensions are then checked to be free, since a size read into a
    constant during tracing would freeze the graph to the export size.

    A size of 1 (a batch of one, a 1-pixel stage map, an SC conv's
    calibration pool of 1x1) is traced as any other size, as torch.onnx's
    own capture does: a batch-1 example still exports a free batch, and a
    small export size adds no size-one guard, which torch.export may fail
    to solve (it did for SCNet's 1x1 pools). The callers' checks at other
    sizes are what show the graph right there."""
    import onnx

    from .ops import ONNX_TRANSLATIONS
    module.eval()
    oblivious = torch.fx.experimental._config.patch(backed_size_oblivious=True)
    with torch.no_grad(), oblivious:
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
    for value, shapes in zip(graph.input, dynamic_shapes or ()):
        dims = value.type.tensor_type.shape.dim
        frozen = [i for i in shapes if dims[i].HasField('dim_value')]
        if frozen:
            raise RuntimeError(
                f'{path}: input {value.name} has fixed dimensions {frozen} '
                f'({[d.dim_value for d in dims]}) that were exported as '
                'free: the graph would be wrong at any other size')
