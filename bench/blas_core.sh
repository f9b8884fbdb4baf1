# Sourced by the bench scripts after the build: exports OPENBLAS_CORETYPE as the kernel set that
# `iclab` itself runs on. When OpenBLAS does not know the CPU model it falls back to generic SSE3
# kernels; iclab then asks for the CPU's own (src/cli/iclab.c), and the separate bench binaries and
# the PyTorch peer (Debian's OpenBLAS too) must get the same kernels for a fair comparison.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  OPENBLAS_CORETYPE=$("${ICLAB:-build/iclab}" bench --blas-core)
  export OPENBLAS_CORETYPE
fi
echo "OpenBLAS kernels: $OPENBLAS_CORETYPE" >&2
