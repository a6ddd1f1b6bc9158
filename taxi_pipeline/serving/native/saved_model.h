// SavedModels run in the front's own process, through TensorFlow's C API.
//
// TensorFlow's library ships in the tensorflow wheel and carries its own
// protobuf, absl and gRPC; the front links Debian's. Loading it with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND) keeps the two sets apart: TensorFlow's
// code binds to its own copies and none of its symbols reach the front's.
// Requests and answers cross as TensorProtos, converted here.

#ifndef SERVING_NATIVE_SAVED_MODEL_H_
#define SERVING_NATIVE_SAVED_MODEL_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tensorflow_serving/apis/predict.pb.h"

struct TF_Graph;
struct TF_Session;

namespace serving_native {

struct Api;  // the C API functions used, resolved from the library

// An input or output of a signature: its alias, graph tensor ("op:index"),
// dtype and shape (-1 for a dimension of any size; no shape: any rank).
struct TensorSpec {
  std::string alias;
  std::string tensor;
  int dtype = 0;
  bool known_rank = false;
  std::vector<int64_t> shape;
};

struct Signature {
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

// TensorFlow's C API from the wheel's libtensorflow_cc.so.2.
class TensorFlow {
 public:
  // Null, with `error` set, when the library or one of its functions is missing.
  static std::unique_ptr<TensorFlow> Load(const std::string& library, std::string* error);
  ~TensorFlow();
  const Api& api() const { return *api_; }

 private:
  TensorFlow() = default;
  void* handle_ = nullptr;
  std::unique_ptr<Api> api_;
};

// One loaded version: a session over its "serve" graph and its signatures.
class SavedModel {
 public:
  // Null, with `error` set, when the folder does not load or a tensor is missing.
  static std::unique_ptr<SavedModel> Load(const TensorFlow& tf, const std::string& export_dir,
                                          const std::map<std::string, Signature>& signatures, std::string* error);
  ~SavedModel();

  // Runs `request` and fills the response's outputs (not its model_spec).
  // False when the request does not fit a signature exactly (names, dtypes,
  // shapes, value counts, output filter) or TensorFlow refuses it: the Python server
  // then answers it, with TF Serving's status and message.
  bool Predict(const tensorflow::serving::PredictRequest& request, tensorflow::serving::PredictResponse* response) const;

 private:
  struct Bound;  // a signature's tensors as graph outputs
  explicit SavedModel(const TensorFlow& tf);
  const TensorFlow& tf_;
  TF_Graph* graph_ = nullptr;
  TF_Session* session_ = nullptr;
  std::map<std::string, std::unique_ptr<Bound>> signatures_;
};

}  // namespace serving_native

#endif  // SERVING_NATIVE_SAVED_MODEL_H_
