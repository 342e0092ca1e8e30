"""ONNX to OpenVINO IR (``.xml`` + ``.bin``), the format OpenVINO's CPU
plugin loads fastest (mmdeploy deploys OpenMMLab models to it); the IR runs
through :func:`mmscnet.deploy.runtime.open_session`."""
from ..runtime.session import _ov


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
