#include "saved_model.h"

#include "batching.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>

#include "tensorflow/c/c_api.h"
#include "tensorflow/c/tf_tstring.h"

namespace serving_native {

using tensorflow::TensorProto;

#define SERVING_TF_FUNCTIONS(X)                                                                     \
  X(TF_NewStatus) X(TF_DeleteStatus) X(TF_GetCode) X(TF_Message) X(TF_NewSessionOptions)           \
  X(TF_DeleteSessionOptions) X(TF_SetConfig) X(TF_NewGraph) X(TF_DeleteGraph)                       \
  X(TF_LoadSessionFromSavedModel) X(TF_CloseSession) X(TF_DeleteSession) X(TF_GraphOperationByName) \
  X(TF_OperationNumOutputs) X(TF_SessionRun) X(TF_AllocateTensor) X(TF_DeleteTensor)               \
  X(TF_TensorData) X(TF_TensorType) X(TF_NumDims) X(TF_Dim) X(TF_DataTypeSize) X(TF_StringInit)    \
  X(TF_StringAssignView) X(TF_StringGetDataPointer) X(TF_StringGetSize)

struct Api {
#define SERVING_TF_POINTER(name) decltype(&::name) name = nullptr;
  SERVING_TF_FUNCTIONS(SERVING_TF_POINTER)
#undef SERVING_TF_POINTER
};

std::unique_ptr<TensorFlow> TensorFlow::Load(const std::string& library, std::string* error) {
  std::unique_ptr<TensorFlow> tf(new TensorFlow);
  tf->handle_ = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (tf->handle_ == nullptr) {
    *error = dlerror();
    return nullptr;
  }
  tf->api_.reset(new Api);
#define SERVING_TF_RESOLVE(name)                                                        \
  tf->api_->name = reinterpret_cast<decltype(&::name)>(dlsym(tf->handle_, #name));      \
  if (tf->api_->name == nullptr) {                                                      \
    *error = library + " has no " #name;                                                \
    return nullptr;                                                                     \
  }
  SERVING_TF_FUNCTIONS(SERVING_TF_RESOLVE)
#undef SERVING_TF_RESOLVE
  return tf;
}

// TensorFlow stays loaded until the process exits: its static state does not unload cleanly.
TensorFlow::~TensorFlow() = default;

namespace {

struct Status {
  explicit Status(const Api& api) : api(api), status(api.TF_NewStatus()) {}
  ~Status() { api.TF_DeleteStatus(status); }
  bool ok() const { return api.TF_GetCode(status) == TF_OK; }
  std::string message() const { return api.TF_Message(status); }
  const Api& api;
  TF_Status* status;
};

// Tensors handed to or taken from TF_SessionRun, deleted with it.
struct Tensors {
  explicit Tensors(const Api& api) : api(api) {}
  ~Tensors() {
    for (TF_Tensor* t : values) {
      if (t != nullptr) api.TF_DeleteTensor(t);
    }
  }
  const Api& api;
  std::vector<TF_Tensor*> values;
};

bool Supported(int dtype) {
  switch (dtype) {
    case TF_FLOAT: case TF_DOUBLE: case TF_INT32: case TF_INT64: case TF_BOOL: case TF_STRING:
      return true;
    default:
      return false;
  }
}

// A TF_Tensor over the request's values. Strings are views of the request's
// bytes (nothing to free), which outlive the run. Null when the values do not
// fill the shape exactly (CarriesItsElements), or TensorFlow cannot allocate it.
TF_Tensor* ToTensor(const Api& api, const TensorProto& proto) {
  if (!Supported(proto.dtype()) || !CarriesItsElements(proto)) return nullptr;
  int64_t count;
  ElementCount(proto.tensor_shape(), 0, &count);
  std::vector<int64_t> dims;
  for (const auto& dim : proto.tensor_shape().dim()) dims.push_back(dim.size());
  const auto dtype = static_cast<TF_DataType>(proto.dtype());
  if (dtype == TF_STRING) {
    TF_Tensor* t = api.TF_AllocateTensor(dtype, dims.data(), dims.size(), count * sizeof(TF_TString));
    if (t == nullptr) return nullptr;
    auto* strings = static_cast<TF_TString*>(api.TF_TensorData(t));
    for (int64_t i = 0; i < count; ++i) {
      api.TF_StringInit(&strings[i]);
      api.TF_StringAssignView(&strings[i], proto.string_val(i).data(), proto.string_val(i).size());
    }
    return t;
  }
  // count is at most the values the request carries: no overflow from here on.
  const size_t bytes = count * api.TF_DataTypeSize(dtype);
  const bool from_content = !proto.tensor_content().empty();
  TF_Tensor* t = api.TF_AllocateTensor(dtype, dims.data(), dims.size(), bytes);
  if (t == nullptr) return nullptr;
  void* data = api.TF_TensorData(t);
  if (from_content) {
    memcpy(data, proto.tensor_content().data(), bytes);
    return t;
  }
  for (int64_t i = 0; i < count; ++i) {
    switch (dtype) {
      case TF_FLOAT: static_cast<float*>(data)[i] = proto.float_val(i); break;
      case TF_DOUBLE: static_cast<double*>(data)[i] = proto.double_val(i); break;
      case TF_INT32: static_cast<int32_t*>(data)[i] = proto.int_val(i); break;
      case TF_INT64: static_cast<int64_t*>(data)[i] = proto.int64_val(i); break;
      default: static_cast<bool*>(data)[i] = proto.bool_val(i); break;
    }
  }
  return t;
}

// As tf.make_tensor_proto writes it (the Python server's answer): numbers in
// tensor_content, strings in string_val.
bool FromTensor(const Api& api, TF_Tensor* t, TensorProto* proto) {
  const TF_DataType dtype = api.TF_TensorType(t);
  if (!Supported(dtype)) return false;
  proto->set_dtype(static_cast<tensorflow::DataType>(dtype));
  int64_t count = 1;
  for (int i = 0; i < api.TF_NumDims(t); ++i) {
    proto->mutable_tensor_shape()->add_dim()->set_size(api.TF_Dim(t, i));
    count *= api.TF_Dim(t, i);
  }
  if (dtype == TF_STRING) {
    const auto* strings = static_cast<const TF_TString*>(api.TF_TensorData(t));
    for (int64_t i = 0; i < count; ++i) {
      proto->add_string_val(api.TF_StringGetDataPointer(&strings[i]), api.TF_StringGetSize(&strings[i]));
    }
  } else {
    proto->set_tensor_content(api.TF_TensorData(t), count * api.TF_DataTypeSize(dtype));
  }
  return true;
}

// Whether a request's tensor shape is one the signature accepts (a graph run
// does not check fed shapes itself).
bool Fits(const tensorflow::TensorShapeProto& given, bool known_rank, const std::vector<int64_t>& shape) {
  if (!known_rank) return true;
  if (given.unknown_rank() || static_cast<size_t>(given.dim_size()) != shape.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] >= 0 && given.dim(static_cast<int>(i)).size() != shape[i]) return false;
  }
  return true;
}

}  // namespace

struct SavedModel::Bound {
  struct Tensor {
    std::string alias;
    TF_Output output;
    int dtype;
    bool known_rank;
    std::vector<int64_t> shape;
  };
  std::vector<Tensor> inputs, outputs;
};

SavedModel::SavedModel(const TensorFlow& tf) : tf_(tf) {}

std::unique_ptr<SavedModel> SavedModel::Load(const TensorFlow& tf, const std::string& export_dir,
                                             const std::map<std::string, Signature>& signatures, std::string* error) {
  const Api& api = tf.api();
  std::unique_ptr<SavedModel> model(new SavedModel(tf));
  model->graph_ = api.TF_NewGraph();
  TF_SessionOptions* options = api.TF_NewSessionOptions();
  Status status(api);
  // Each op runs on one thread (intra-op threads 1): splitting these small ops
  // costs more than it saves. Independent ops of a graph run side by side on two
  // inter-op threads: the taxi model's example decoding and the NER tokenizer
  // are many small independent ops, which on the caller's thread alone (inter-op
  // -1) made a batch-1 call measurably slower than in-process (bench/serving.py).
  // ConfigProto{intra_op_parallelism_threads: 1, inter_op_parallelism_threads: 2}:
  static const char kConfig[] = {0x10, 0x01, 0x28, 0x02};
  api.TF_SetConfig(options, kConfig, sizeof(kConfig), status.status);
  if (!status.ok()) {
    *error = status.message();
    api.TF_DeleteSessionOptions(options);
    return nullptr;
  }
  const char* tags[] = {"serve"};
  model->session_ = api.TF_LoadSessionFromSavedModel(options, nullptr, export_dir.c_str(), tags, 1, model->graph_,
                                                     nullptr, status.status);
  api.TF_DeleteSessionOptions(options);
  if (!status.ok()) {
    *error = status.message();
    model->session_ = nullptr;
    return nullptr;
  }
  auto bind = [&](const TensorSpec& spec, std::vector<Bound::Tensor>* into) {
    const size_t colon = spec.tensor.rfind(':');
    const std::string op = spec.tensor.substr(0, colon);
    const int index = colon == std::string::npos ? 0 : atoi(spec.tensor.c_str() + colon + 1);
    TF_Operation* operation = api.TF_GraphOperationByName(model->graph_, op.c_str());
    if (operation == nullptr || index >= api.TF_OperationNumOutputs(operation)) {
      *error = "no tensor " + spec.tensor + " in the graph";
      return false;
    }
    into->push_back({spec.alias, TF_Output{operation, index}, spec.dtype, spec.known_rank, spec.shape});
    return true;
  };
  for (const auto& [name, signature] : signatures) {
    auto bound = std::make_unique<Bound>();
    for (const TensorSpec& spec : signature.inputs) {
      if (!bind(spec, &bound->inputs)) return nullptr;
    }
    for (const TensorSpec& spec : signature.outputs) {
      if (!bind(spec, &bound->outputs)) return nullptr;
    }
    model->signatures_[name] = std::move(bound);
  }
  return model;
}

SavedModel::~SavedModel() {
  const Api& api = tf_.api();
  if (session_ != nullptr) {
    Status status(api);
    api.TF_CloseSession(session_, status.status);
    api.TF_DeleteSession(session_, status.status);
  }
  if (graph_ != nullptr) api.TF_DeleteGraph(graph_);
}

bool SavedModel::Predict(const tensorflow::serving::PredictRequest& request,
                         tensorflow::serving::PredictResponse* response) const {
  const Api& api = tf_.api();
  const std::string& name = request.model_spec().signature_name();
  const auto found = signatures_.find(name.empty() ? "serving_default" : name);
  if (found == signatures_.end()) return false;
  const Bound& signature = *found->second;
  if (static_cast<size_t>(request.inputs_size()) != signature.inputs.size()) return false;

  std::vector<TF_Output> feeds;
  Tensors inputs(api);
  for (const Bound::Tensor& spec : signature.inputs) {
    const auto given = request.inputs().find(spec.alias);
    if (given == request.inputs().end() || given->second.dtype() != spec.dtype) return false;
    if (!Fits(given->second.tensor_shape(), spec.known_rank, spec.shape)) return false;
    TF_Tensor* t = ToTensor(api, given->second);
    if (t == nullptr) return false;
    feeds.push_back(spec.output);
    inputs.values.push_back(t);
  }
  std::vector<const Bound::Tensor*> wanted;
  for (const Bound::Tensor& spec : signature.outputs) {
    const auto& filter = request.output_filter();
    if (filter.empty() || std::find(filter.begin(), filter.end(), spec.alias) != filter.end()) wanted.push_back(&spec);
  }
  std::vector<TF_Output> fetches;
  for (const Bound::Tensor* spec : wanted) fetches.push_back(spec->output);
  if (wanted.size() != (request.output_filter().empty() ? signature.outputs.size()
                                                        : static_cast<size_t>(request.output_filter_size()))) {
    return false;  // an unknown or repeated name in output_filter
  }

  Tensors outputs(api);
  outputs.values.assign(fetches.size(), nullptr);
  Status status(api);
  api.TF_SessionRun(session_, nullptr, feeds.data(), inputs.values.data(), feeds.size(), fetches.data(),
                    outputs.values.data(), fetches.size(), nullptr, 0, nullptr, status.status);
  if (!status.ok()) return false;
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (!FromTensor(api, outputs.values[i], &(*response->mutable_outputs())[wanted[i]->alias])) return false;
  }
  return true;
}

}  // namespace serving_native
