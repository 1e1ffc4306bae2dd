// Conversions between io-level tensors (raw bytes + safetensors dtype) and
// at::Tensor. Private to lp_core.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "linearpatch/io/checkpoint.h"
#include "linearpatch/io/safetensors.h"

namespace lp {

at::ScalarType to_scalar_type(io::DType dtype, const std::string& what);
io::DType to_io_dtype(at::ScalarType type);

// A tensor viewing the bytes of `ref` without copying; `owner` is kept alive
// as long as the tensor (or any view of it) lives. Bytes not aligned to the
// element size are copied instead.
at::Tensor view_tensor(const io::TensorRef& ref, std::shared_ptr<const void> owner);

// Describes a contiguous CPU tensor for the safetensors writer; the tensor
// must outlive the write.
io::OutputTensor output_tensor(const std::string& name, const at::Tensor& tensor);

}  // namespace lp
