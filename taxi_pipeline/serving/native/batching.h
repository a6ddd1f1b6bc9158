// Tensor batching for the front: which Predict requests can be stacked, the
// stacked request, and the rows of an output that belong to each caller.

#ifndef SERVING_NATIVE_BATCHING_H_
#define SERVING_NATIVE_BATCHING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "tensorflow_serving/apis/predict.pb.h"

namespace serving_native {

// TensorFlow's largest rank (TensorShape::MaxDimensions()).
constexpr int kMaxRank = 254;

// The elements of `shape` from dimension `from_dim` on; false when its rank is
// unknown or above kMaxRank, a dimension is negative, or the product of its non-zero dimensions
// overflows int64 (nothing is allocated from a shape before this says yes).
bool ElementCount(const tensorflow::TensorShapeProto& shape, int from_dim, int64_t* count);

// Whether `t` carries exactly one value for each element its shape declares,
// in tensor_content or in its dtype's repeated field, for the dtypes the front
// runs; anything else is left to the Python server to refuse or accept.
bool CarriesItsElements(const tensorflow::TensorProto& t);

// Rows (dimension 0) of a request whose inputs can be stacked with others';
// `key` names what must match (model, version, signature, dtypes, shapes).
// Returns 0 when the request is to be relayed as it is.
int64_t BatchKey(const tensorflow::serving::PredictRequest& request, std::string* key);

// Stacks requests that share a BatchKey along dimension 0.
tensorflow::serving::PredictRequest Merge(const std::vector<const tensorflow::serving::PredictRequest*>& parts,
                                          int64_t rows);

// Rows [from, from + count) of a tensor whose dimension 0 is `total`.
bool SliceRows(const tensorflow::TensorProto& t, int64_t total, int64_t from, int64_t count,
               tensorflow::TensorProto* out);

}  // namespace serving_native

#endif  // SERVING_NATIVE_BATCHING_H_
