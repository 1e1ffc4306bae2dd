#include "model/tensor_bridge.h"

#include <cstring>

#include "linearpatch/core/error.h"

namespace lp {

at::ScalarType to_scalar_type(io::DType dtype, const std::string& what) {
  switch (dtype) {
    case io::DType::kF32: return at::kFloat;
    case io::DType::kF16: return at::kHalf;
    case io::DType::kBF16: return at::kBFloat16;
    case io::DType::kF64: return at::kDouble;
    case io::DType::kI64: return at::kLong;
    case io::DType::kI32: return at::kInt;
    case io::DType::kI16: return at::kShort;
    case io::DType::kI8: return at::kChar;
    case io::DType::kU8: return at::kByte;
    case io::DType::kBool: return at::kBool;
    default: break;
  }
  throw InputError(what + ": dtype " + std::string(io::dtype_name(dtype)) + " is not supported");
}

io::DType to_io_dtype(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return io::DType::kF32;
    case at::kHalf: return io::DType::kF16;
    case at::kBFloat16: return io::DType::kBF16;
    case at::kDouble: return io::DType::kF64;
    case at::kLong: return io::DType::kI64;
    case at::kInt: return io::DType::kI32;
    case at::kShort: return io::DType::kI16;
    case at::kChar: return io::DType::kI8;
    case at::kByte: return io::DType::kU8;
    case at::kBool: return io::DType::kBool;
    default: break;
  }
  throw Error(std::string("cannot store tensors of type ") + c10::toString(type));
}

at::Tensor view_tensor(const io::TensorRef& ref, std::shared_ptr<const void> owner) {
  const auto& info = *ref.info;
  const auto type = to_scalar_type(info.dtype, ref.file->path().string() + ": tensor '" + info.name + "'");
  const auto options = at::TensorOptions().dtype(type);
  auto* bytes = const_cast<uint8_t*>(ref.data());
  if (reinterpret_cast<uintptr_t>(bytes) % io::dtype_size(info.dtype) != 0) {
    auto copy = at::empty(info.shape, options);
    std::memcpy(copy.data_ptr(), bytes, info.nbytes());
    return copy;
  }
  return at::from_blob(bytes, info.shape, [owner](void*) {}, options);
}

io::OutputTensor output_tensor(const std::string& name, const at::Tensor& tensor) {
  if (!tensor.device().is_cpu() || !tensor.is_contiguous())
    throw Error("internal: tensor '" + name + "' must be contiguous on the CPU to be written");
  io::OutputTensor out;
  out.name = name;
  out.dtype = to_io_dtype(tensor.scalar_type());
  out.shape = tensor.sizes().vec();
  out.nbytes = tensor.nbytes();
  out.data = tensor.data_ptr();
  return out;
}

}  // namespace lp
