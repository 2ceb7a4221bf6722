"""TF32 switches for the PyTorch bench scripts, across PyTorch versions.

PyTorch 2.9 added per-backend `fp32_precision` settings ("tf32" / "ieee") and deprecated the
`allow_tf32` flags; mixing the two kinds can raise. This uses the new settings where they exist
and the old flags otherwise, for cuDNN convolutions and cuBLAS matrix products together.
"""

import torch


def _new_api():
    # Older versions raise AssertionError (not AttributeError) for unknown attributes here.
    try:
        torch.backends.cuda.matmul.fp32_precision
        torch.backends.cudnn.conv.fp32_precision
        return True
    except (AttributeError, AssertionError):
        return False


def set_tf32(on):
    """TF32 tensor-core math for convolutions and matrix products, on or off."""
    if _new_api():
        mode = "tf32" if on else "ieee"
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
    else:
        torch.backends.cudnn.allow_tf32 = on
        torch.backends.cuda.matmul.allow_tf32 = on


def tf32_state():
    """{"tf32_conv": ..., "tf32_matmul": ...} as the running PyTorch reports them."""
    try:
        if _new_api():
            return {"tf32_conv": torch.backends.cudnn.conv.fp32_precision,
                    "tf32_matmul": torch.backends.cuda.matmul.fp32_precision}
        return {"tf32_conv": bool(torch.backends.cudnn.allow_tf32),
                "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32)}
    except RuntimeError as e:  # a mix of the two APIs elsewhere
        return {"tf32_state": str(e).split("\n")[0]}
