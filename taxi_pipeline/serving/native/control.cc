// See control.h.

#include "control.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace serving_native {

namespace {

std::mutex stdout_mu;

}  // namespace

void Say(const std::vector<std::string>& fields) {
  std::string line;
  for (const std::string& f : fields) {
    std::string one = f;
    std::replace_if(one.begin(), one.end(), [](char c) { return c == '\t' || c == '\n'; }, ' ');
    line += (line.empty() ? "" : "\t") + one;
  }
  std::lock_guard<std::mutex> lock(stdout_mu);
  printf("%s\n", line.c_str());
  fflush(stdout);
}

namespace {

// `line` cut at each `separator` (a control line's fields: tabs).
std::vector<std::string> Fields(const std::string& line, char separator = '\t') {
  std::vector<std::string> fields;
  size_t from = 0;
  for (size_t at; (at = line.find(separator, from)) != std::string::npos; from = at + 1) {
    fields.push_back(line.substr(from, at - from));
  }
  fields.push_back(line.substr(from));
  return fields;
}

}  // namespace

void Control(Models* models, Tallies* tallies, const std::string& library) {
  std::unique_ptr<serving_native::TensorFlow> tf;
  std::string tf_error = "no --tensorflow_library given";
  if (!library.empty()) tf_error.clear();
  std::string line;
  while (std::getline(std::cin, line)) {
    const std::vector<std::string> f = Fields(line);
    if (f[0] == "tallies") {
      for (const std::string& tally : tallies->Lines()) Say(Fields(tally));
      Say({"tallies_end"});
      continue;
    }
    if (f[0] == "unload" && f.size() == 3) {
      models->Unload(f[1], strtoll(f[2].c_str(), nullptr, 10));
      continue;
    }
    if (f[0] != "load" || f.size() != 4) {
      fprintf(stderr, "serving_front: ignoring control line '%s'\n", line.c_str());
      continue;
    }
    const int64_t version = strtoll(f[2].c_str(), nullptr, 10);
    std::map<std::string, serving_native::Signature> signatures;
    while (std::getline(std::cin, line) && line != "end") {
      const std::vector<std::string> t = Fields(line);
      if (t.size() == 6 && (t[0] == "input" || t[0] == "output")) {
        auto& into = t[0] == "input" ? signatures[t[1]].inputs : signatures[t[1]].outputs;
        serving_native::TensorSpec spec{t[2], t[3], atoi(t[4].c_str()), t[5] != "?", {}};
        if (spec.known_rank && !t[5].empty()) {
          for (const std::string& dim : Fields(t[5], ',')) spec.shape.push_back(strtoll(dim.c_str(), nullptr, 10));
        }
        into.push_back(spec);
      }
    }
    models->Announce(f[1], version);
    if (!tf && tf_error.empty()) tf = serving_native::TensorFlow::Load(library, &tf_error);
    std::string error = tf ? "" : "TensorFlow's C API is not available: " + tf_error;
    std::shared_ptr<const SavedModel> model = tf ? SavedModel::Load(*tf, f[3], signatures, &error) : nullptr;
    if (model) models->Loaded(f[1], version, model);
    Say({model ? "loaded" : "failed", f[1], f[2], error});
  }
}

}  // namespace serving_native
