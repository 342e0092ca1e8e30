"""The one session opener: an exported graph in ONNX Runtime's or OpenVINO's
CPU plugin, as ``run(feeds: dict) -> [arrays]``. It needs the runtime
package alone (no torch)."""
import os.path as osp

BACKENDS = ('onnxruntime', 'openvino')
GRAPH_EXTS = {'.onnx': 'onnxruntime or openvino', '.xml': 'openvino'}
# Our precision names -> OpenVINO's inference precision hint. ONNX Runtime's
# CPU provider runs the graph in fp32, as exported.
OPENVINO_PRECISIONS = {'fp32': 'f32', 'bf16': 'bf16'}


def _ov():
    try:
        import openvino
    except ImportError as e:
        raise ImportError(
            'the OpenVINO runtime needs the openvino package: pip install '
            "-e '.[deploy]' (or pip install openvino)") from e
    return openvino


def openvino_has_native_bf16():
    """Whether OpenVINO's CPU plugin runs bf16 natively here (AVX512_BF16 or
    AMX); elsewhere it would emulate it, and bf16 is refused."""
    core = _ov().Core()
    return 'BF16' in core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')


def _check_path(graph, backend):
    ext = osp.splitext(graph)[1]
    if ext not in GRAPH_EXTS:
        raise ValueError(f'{graph}: an exported graph ends in '
                         f'{" or ".join(GRAPH_EXTS)}')
    if ext == '.xml' and backend != 'openvino':
        raise ValueError(f'{graph} is OpenVINO IR: use --backend '
                         'openvino, or the .onnx file with onnxruntime')
    if not osp.isfile(graph):
        raise FileNotFoundError(f'exported model not found: {graph}')


def open_session(graph, backend, precision='fp32', threads=None):
    """``run(feeds) -> [arrays]`` for ``graph`` in ``backend``: a path
    (``.onnx``, or ``.xml`` for OpenVINO) or, for OpenVINO, an
    ``openvino.Model`` in memory. ``feeds`` maps input names to arrays.

    OpenVINO runs at ``precision``, whose hint is always set: on CPUs with
    native bf16 the plugin's default is bf16, not the fp32 the graph was
    exported in. bf16 is refused where the CPU has no native bf16."""
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
    allowed = OPENVINO_PRECISIONS if backend == 'openvino' else ('fp32', )
    if precision not in allowed:
        raise ValueError(f'precision for {backend} must be one of '
                         f'{tuple(allowed)}, got {precision!r}')
    if precision == 'bf16' and not openvino_has_native_bf16():
        raise ValueError(
            'OpenVINO bf16 needs a CPU with native bf16 (AVX512_BF16 or AMX); '
            'this one has none: use fp32')
    if isinstance(graph, str):
        _check_path(graph, backend)
    elif backend != 'openvino':
        raise TypeError('onnxruntime opens an .onnx file path, got '
                        f'{type(graph).__name__}')
    if backend == 'onnxruntime':
        import onnxruntime as ort
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(
            graph, options, providers=['CPUExecutionProvider'])
        return lambda feeds: session.run(None, feeds)
    config = {'INFERENCE_PRECISION_HINT': OPENVINO_PRECISIONS[precision]}
    if threads:
        config['INFERENCE_NUM_THREADS'] = threads
    request = _ov().Core().compile_model(graph, 'CPU',
                                         config).create_infer_request()

    def run(feeds):
        # Copies: the request's output buffers are reused by the next call.
        return [o.copy() for o in request.infer(feeds).to_tuple()]

    return run
