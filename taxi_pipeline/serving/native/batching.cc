// See batching.h.

#include "batching.h"

#include <algorithm>
#include <cstring>

namespace serving_native {

using tensorflow::TensorProto;
using tensorflow::serving::PredictRequest;

// The values of a tensor live in tensor_content or in one typed repeated field.
namespace {

const google::protobuf::FieldDescriptor* ValueField(const TensorProto& t, int* fields_used) {
  const auto* descriptor = t.GetDescriptor();
  const auto* reflection = t.GetReflection();
  const google::protobuf::FieldDescriptor* found = nullptr;
  *fields_used = t.tensor_content().empty() ? 0 : 1;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const auto* field = descriptor->field(i);
    if (field->is_repeated() && reflection->FieldSize(t, field) > 0) {
      found = field;
      ++*fields_used;
    }
  }
  return found;
}

}  // namespace

bool ElementCount(const tensorflow::TensorShapeProto& shape, int from_dim, int64_t* count) {
  if (shape.unknown_rank() || shape.dim_size() > kMaxRank) return false;
  int64_t product = 1;
  bool empty = false;
  for (int i = from_dim; i < shape.dim_size(); ++i) {
    const int64_t size = shape.dim(i).size();
    if (size < 0) return false;
    if (size == 0) {
      empty = true;
    } else if (__builtin_mul_overflow(product, size, &product)) {
      return false;
    }
  }
  *count = empty ? 0 : product;
  return true;
}

bool CarriesItsElements(const TensorProto& t) {
  int64_t count;
  if (!ElementCount(t.tensor_shape(), 0, &count)) return false;
  int64_t carried, item_bytes;
  switch (t.dtype()) {
    case tensorflow::DT_FLOAT: carried = t.float_val_size(); item_bytes = 4; break;
    case tensorflow::DT_DOUBLE: carried = t.double_val_size(); item_bytes = 8; break;
    case tensorflow::DT_INT32: carried = t.int_val_size(); item_bytes = 4; break;
    case tensorflow::DT_INT64: carried = t.int64_val_size(); item_bytes = 8; break;
    case tensorflow::DT_BOOL: carried = t.bool_val_size(); item_bytes = 1; break;
    case tensorflow::DT_STRING: return t.tensor_content().empty() && t.string_val_size() == count;
    default: return false;
  }
  if (t.tensor_content().empty()) return carried == count;
  int64_t bytes;
  return carried == 0 && !__builtin_mul_overflow(count, item_bytes, &bytes) &&
         static_cast<int64_t>(t.tensor_content().size()) == bytes;
}

// Rows (dimension 0) of a request whose inputs can be stacked with others';
// `key` then names what must match for two requests to share a batch.
// Returns 0 when the request is to be relayed as it is.
int64_t BatchKey(const PredictRequest& request, std::string* key) {
  const auto& spec = request.model_spec();
  *key = spec.name() + '\n' + (spec.has_version() ? std::to_string(spec.version().value()) : "") + '\n' +
         spec.version_label() + '\n' + spec.signature_name() + '\n';
  std::vector<std::string> names;
  for (const auto& input : request.inputs()) names.push_back(input.first);
  std::sort(names.begin(), names.end());
  int64_t rows = -1;
  for (const std::string& name : names) {
    const TensorProto& t = request.inputs().at(name);
    const auto& shape = t.tensor_shape();
    if (shape.unknown_rank() || shape.dim_size() == 0 || shape.dim(0).size() < 1) return 0;
    if (rows != -1 && shape.dim(0).size() != rows) return 0;
    rows = shape.dim(0).size();
    int64_t per_row;
    if (!ElementCount(shape, 1, &per_row)) return 0;
    int fields_used;
    const auto* field = ValueField(t, &fields_used);
    std::string layout;
    if (fields_used != 1) return 0;  // no values, or an ambiguous mix
    if (field == nullptr) {           // tensor_content
      if (t.tensor_content().size() % rows != 0) return 0;
      layout = "content:" + std::to_string(t.tensor_content().size() / rows);
    } else {                          // one value per element, no broadcasting
      if (t.GetReflection()->FieldSize(t, field) != rows * per_row) return 0;
      layout = field->name();
    }
    *key += name + ':' + std::to_string(t.dtype()) + ':' + layout;
    for (int i = 1; i < shape.dim_size(); ++i) *key += ',' + std::to_string(shape.dim(i).size());
    *key += '\n';
  }
  std::vector<std::string> filter(request.output_filter().begin(), request.output_filter().end());
  std::sort(filter.begin(), filter.end());
  for (const std::string& f : filter) *key += "out:" + f + '\n';
  return rows;
}

// Stacks requests that share a BatchKey along dimension 0.
PredictRequest Merge(const std::vector<const PredictRequest*>& parts, int64_t rows) {
  PredictRequest merged;
  *merged.mutable_model_spec() = parts[0]->model_spec();
  *merged.mutable_output_filter() = parts[0]->output_filter();
  for (const auto& input : parts[0]->inputs()) {
    TensorProto& t = (*merged.mutable_inputs())[input.first];
    t = input.second;
    std::string content = t.tensor_content();
    for (size_t i = 1; i < parts.size(); ++i) {
      TensorProto values = parts[i]->inputs().at(input.first);
      content += values.tensor_content();
      values.clear_tensor_content();
      values.clear_tensor_shape();
      t.MergeFrom(values);  // appends the repeated value fields
    }
    t.set_tensor_content(content);
    t.mutable_tensor_shape()->mutable_dim(0)->set_size(rows);
  }
  return merged;
}

// Rows [from, from + count) of a tensor whose dimension 0 is `total`.
bool SliceRows(const TensorProto& t, int64_t total, int64_t from, int64_t count, TensorProto* out) {
  const auto& shape = t.tensor_shape();
  if (shape.unknown_rank() || shape.dim_size() == 0 || shape.dim(0).size() != total) return false;
  out->set_dtype(t.dtype());
  *out->mutable_tensor_shape() = shape;
  out->mutable_tensor_shape()->mutable_dim(0)->set_size(count);
  int fields_used;
  const auto* field = ValueField(t, &fields_used);
  int64_t elements;
  if (fields_used == 0) return ElementCount(shape, 0, &elements) && elements == 0;
  if (fields_used != 1) return false;
  if (field == nullptr) {
    const std::string& content = t.tensor_content();
    if (content.size() % total != 0) return false;
    const size_t row = content.size() / total;
    out->set_tensor_content(content.substr(from * row, count * row));
    return true;
  }
  const auto* reflection = t.GetReflection();
  const int size = reflection->FieldSize(t, field);
  if (size % total != 0) return false;
  const int64_t per_row = size / total;
  for (int64_t i = from * per_row; i < (from + count) * per_row; ++i) {
    switch (field->cpp_type()) {
      case google::protobuf::FieldDescriptor::CPPTYPE_FLOAT:
        reflection->AddFloat(out, field, reflection->GetRepeatedFloat(t, field, i));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_DOUBLE:
        reflection->AddDouble(out, field, reflection->GetRepeatedDouble(t, field, i));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_INT32:
        reflection->AddInt32(out, field, reflection->GetRepeatedInt32(t, field, i));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_INT64:
        reflection->AddInt64(out, field, reflection->GetRepeatedInt64(t, field, i));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_UINT32:
        reflection->AddUInt32(out, field, reflection->GetRepeatedUInt32(t, field, i));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_UINT64:
        reflection->AddUInt64(out, field, reflection->GetRepeatedUInt64(t, field, i));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_BOOL:
        reflection->AddBool(out, field, reflection->GetRepeatedBool(t, field, i));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_STRING:
        reflection->AddString(out, field, reflection->GetRepeatedString(t, field, i));
        break;
      default:
        return false;  // complex, resource and variant values are not split
    }
  }
  return true;
}

}  // namespace serving_native
