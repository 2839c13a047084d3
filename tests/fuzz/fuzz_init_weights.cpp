// Fuzz target: the initial-weights reader (network.init_file, number_table.hpp) through the build
// layer that uses it (build.hpp: initial_weights, then initial_state of the flow).
// Input: the first byte chooses the network and flow (flow.kind = byte % 4 in enums.hpp order;
// hidden widths = kHidden[(byte / 4) % 3]); the remaining bytes are the init file. Data: 4 fixed
// points in R^2, so P = 2, 2*2+2 = 6 or 2*3+3*2+2 = 14 for the three networks.
// Contract checked: the build layer either throws SpecError (bad input, exit 2 in gfsim) or returns
// P finite weights and a finite initial state of the flow's size.
// Anything else (another exception, a crash, a sanitizer report, a hang) is a finding.
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gfsim/build.hpp"
#include "gfsim/errors.hpp"
#include "gfsim/model_spec.hpp"

namespace {

const char* const kFlowKinds[4] = {"gd", "gd_polar", "wn", "fixed_rho"};
const char* const kHidden[3] = {"[]", "[2]", "[3, 2]"};

gfsim::Dataset fixed_data() {
  gfsim::Dataset data{gfsim::Mat(4, 2), gfsim::Vec(4)};
  data.X << 1.0, 0.5, 0.3, 2.0, -1.0, -0.2, -0.4, -1.5;
  data.y << 1.0, 1.0, -1.0, -1.0;
  return data;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const std::string path = "/tmp/gfsim_fuzz_init_" + std::to_string(getpid()) + ".txt";
  FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) std::abort();
  if (size > 1 && std::fwrite(data + 1, 1, size - 1, file) != size - 1) std::abort();
  std::fclose(file);

  const unsigned choice = data[0];
  const std::string toml = std::string("[data]\nkind = \"gaussian\"\nn = 4\ndim = 2\n") +
                           "[network]\nactivation = \"" + ((choice / 12) % 2 ? "relu" : "linear") +
                           "\"\nhidden = " + kHidden[(choice / 4) % 3] + "\ninit_file = \"" + path +
                           "\"\n[flow]\nkind = \"" + kFlowKinds[choice % 4] + "\"\nrho = 2.0\n";
  const gfsim::ModelSpec spec = gfsim::parse_model_spec(toml, "/fuzz/model.toml");
  static const gfsim::Dataset points = fixed_data();
  const gfsim::Network net = gfsim::flow_network(spec, points.dim());
  const gfsim::Flow flow = gfsim::make_flow(spec, net, points);
  gfsim::Vec theta, y0;
  try {
    theta = gfsim::initial_weights(spec, net);
    y0 = gfsim::initial_state(spec, flow, theta);
  } catch (const gfsim::SpecError&) {
    return 0;  // refused with a message: the intended outcome for bad input
  }
  if (theta.size() != net.num_params() || !theta.allFinite()) {
    std::fprintf(stderr, "weights: %ld numbers, P = %ld, finite: %d\n", long(theta.size()), long(net.num_params()),
                 int(theta.allFinite()));
    std::abort();
  }
  if (y0.size() != flow.state_size() || !y0.allFinite()) {
    std::fprintf(stderr, "initial state of the %s flow: size %ld of %ld, finite: %d\n", kFlowKinds[choice % 4],
                 long(y0.size()), long(flow.state_size()), int(y0.allFinite()));
    std::abort();
  }
  return 0;
}
