// The control protocol between the Python server and the front (see front.cc's
// header): the versions Python announced and those loaded here, and the loop
// reading the control lines on stdin.

#ifndef SERVING_NATIVE_CONTROL_H_
#define SERVING_NATIVE_CONTROL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "saved_model.h"
#include "tallies.h"
#include "tensorflow_serving/apis/model.pb.h"

namespace serving_native {

// The versions the Python server announced, and those loaded here.
class Models {
 public:
  // The loaded version a request names (or the latest, if it names none);
  // null when the Python server is to answer it.
  std::shared_ptr<const SavedModel> Find(const tensorflow::serving::ModelSpec& spec, int64_t* version) {
    if (!spec.version_label().empty()) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    const auto model = models_.find(spec.name());
    if (model == models_.end()) return nullptr;
    const std::set<int64_t>& announced = model->second.announced;
    *version = spec.has_version() ? spec.version().value() : announced.empty() ? -1 : *announced.rbegin();
    const auto loaded = model->second.loaded.find(*version);
    return loaded == model->second.loaded.end() ? nullptr : loaded->second;
  }

  // Python serves `version` from now on (the latest is the highest); it runs here once loaded.
  void Announce(const std::string& name, int64_t version) {
    std::lock_guard<std::mutex> lock(mu_);
    models_[name].announced.insert(version);
  }

  void Loaded(const std::string& name, int64_t version, std::shared_ptr<const SavedModel> model) {
    std::lock_guard<std::mutex> lock(mu_);
    models_[name].loaded[version] = std::move(model);
  }

  // Batches already running keep their version until they finish.
  void Unload(const std::string& name, int64_t version) {
    std::lock_guard<std::mutex> lock(mu_);
    Model& model = models_[name];
    model.loaded.erase(version);
    model.announced.erase(version);
  }

 private:
  struct Model {
    std::set<int64_t> announced;
    std::map<int64_t, std::shared_ptr<const SavedModel>> loaded;
  };
  std::mutex mu_;
  std::map<std::string, Model> models_;
};

// One tab-separated line on stdout, for the Python server that reads them.
void Say(const std::vector<std::string>& fields);

// Reads the Python server's control lines until stdin closes, loading each
// announced version with TensorFlow's C API from `library`, and answering
// `tallies` with the lines of `tallies` and a closing `tallies_end`.
void Control(Models* models, Tallies* tallies, const std::string& library);

}  // namespace serving_native

#endif  // SERVING_NATIVE_CONTROL_H_
