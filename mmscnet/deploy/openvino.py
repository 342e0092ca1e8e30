"""OpenVINO, the CPU runtime mmdeploy deploys OpenMMLab models with: the ONNX
export (:mod:`.onnx`) converted to OpenVINO IR (``.xml`` + ``.bin``) and run
in OpenVINO's CPU plugin (``tools/deployment/pytorch2onnx.py --openvino``,
``benchmark.py``'s OpenVINO rows)."""
import os.path as osp

# Our precision names -> OpenVINO's inference precision hint.
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


def convert_to_openvino(onnx_path, xml_path=None):
    """The ONNX file as an OpenVINO model; with ``xml_path``, also written as
    IR there (``.bin`` beside it). Weights stay fp32: OpenVINO's
    ``save_model`` would otherwise compress them to fp16, which costs the
    parity."""
    if xml_path and not xml_path.endswith('.xml'):
        raise ValueError(f'an OpenVINO IR path ends in .xml, got {xml_path!r}')
    ov = _ov()
    model = ov.convert_model(onnx_path)
    if xml_path:
        ov.save_model(model, xml_path, compress_to_fp16=False)
    return model


def openvino_runner(model, precision='fp32', threads=None):
    """``run(array) -> [arrays]`` for an OpenVINO model (or the path of an IR
    ``.xml`` or ``.onnx`` file) compiled for the CPU plugin at ``precision``.
    The hint is always set: on CPUs with native bf16 the plugin's default is
    bf16, not the fp32 the model was exported in."""
    if precision not in OPENVINO_PRECISIONS:
        raise ValueError(f'precision must be one of '
                         f'{tuple(OPENVINO_PRECISIONS)}, got {precision!r}')
    if precision == 'bf16' and not openvino_has_native_bf16():
        raise ValueError(
            'OpenVINO bf16 needs a CPU with native bf16 (AVX512_BF16 or AMX); '
            'this one has none: use fp32')
    ov = _ov()
    if isinstance(model, str) and not osp.isfile(model):
        raise FileNotFoundError(f'OpenVINO model not found: {model}')
    config = {'INFERENCE_PRECISION_HINT': OPENVINO_PRECISIONS[precision]}
    if threads:
        config['INFERENCE_NUM_THREADS'] = threads
    compiled = ov.Core().compile_model(model, 'CPU', config)
    request = compiled.create_infer_request()

    def run(x):
        # Copies: the request's output buffers are reused by the next call.
        return [o.copy() for o in request.infer({0: x}).to_tuple()]

    return run
