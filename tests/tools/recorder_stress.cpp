// recorder_stress: records a synthetic trajectory whose contents are known functions of the
// sample index, printing "flushed N" after every flush so that a test can kill it (SIGKILL) and
// check that those N samples survived. Used by tests/python/test_reader.py.
//
//   recorder_stress FILE [--samples N] [--width W] [--flush-interval SECONDS] [--no-swmr]
//
// Sample i: step = i, time = i * 1e-3; observables theta [W]: i + j * 0.125, loss (scalar):
// 1 / (i + 1), eig [3] (column names lambda_1..lambda_3): -(i + k). --samples 0 (the default)
// records until killed; otherwise finish() stores /solver (status success, counters.steps = N)
// and the dataset final/theta (the last theta row), then "finished N" is printed.
#include <charconv>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "gfsim/recorder.hpp"

namespace {

struct Options {
  std::string path;
  std::int64_t samples = 0;
  std::int64_t width = 50;
  double flush_interval = 0.001;
  bool swmr = true;
};

template <class T>
T parse_number(std::string_view flag, std::string_view text) {
  T value{};
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) {
    throw std::invalid_argument(std::string(flag) + ": not a number: " + std::string(text));
  }
  return value;
}

Options parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--no-swmr") {
      options.swmr = false;
    } else if (arg == "--samples" && has_value) {
      options.samples = parse_number<std::int64_t>(arg, argv[++i]);
    } else if (arg == "--width" && has_value) {
      options.width = parse_number<std::int64_t>(arg, argv[++i]);
    } else if (arg == "--flush-interval" && has_value) {
      options.flush_interval = parse_number<double>(arg, argv[++i]);
    } else if (!arg.starts_with("--") && options.path.empty()) {
      options.path = arg;
    } else {
      throw std::invalid_argument("unexpected argument: " + std::string(arg));
    }
  }
  if (options.path.empty() || options.width < 1 || options.samples < 0) {
    throw std::invalid_argument(
        "usage: recorder_stress FILE [--samples N] [--width W>=1] [--flush-interval S] "
        "[--no-swmr]");
  }
  return options;
}

void record(const Options& options) {
  gfsim::Provenance meta;
  meta.file_type = "gfsim-trajectory";
  meta.model_name = "recorder_stress";
  meta.model_toml = "# synthetic trajectory written by tests/tools/recorder_stress\n";
  meta.int_array_attrs = {{"widths", {options.width, 1}}};
  meta.string_attrs = {{"flow", "synthetic"}};
  meta.double_attrs = {{"time_per_step", 1e-3}};
  meta.int_attrs = {{"P", options.width}};
  gfsim::Recorder recorder(
      options.path,
      {{{"theta", options.width, "synthetic state: i + j / 8", {}, {}},
        {"loss", 0, "1 / (i + 1)", {}, {}},
        {"eig", 3, "-(i + k)", {"lambda_1", "lambda_2", "lambda_3"}, {}}},
       {},
       {}},
      meta, {.flush_interval = options.flush_interval, .swmr = options.swmr});

  std::vector<double> theta(options.width);
  double eig[3];
  std::int64_t reported = 0;
  for (std::int64_t i = 0; options.samples == 0 || i < options.samples; ++i) {
    const double index = static_cast<double>(i);
    for (std::int64_t j = 0; j < options.width; ++j) theta[j] = index + static_cast<double>(j) * 0.125;
    for (int k = 0; k < 3; ++k) eig[k] = -(index + k);
    const double loss = 1.0 / (index + 1.0);
    recorder.append(i, index * 1e-3, {theta, {&loss, 1}, eig});
    if (recorder.samples_flushed() != reported) {
      reported = recorder.samples_flushed();
      std::printf("flushed %lld\n", static_cast<long long>(reported));
      std::fflush(stdout);
    }
  }
  gfsim::SolveResult result;
  result.message = "recorded " + std::to_string(options.samples) + " samples";
  result.method = "none";
  result.clock = "t";
  result.t_final = static_cast<double>(options.samples - 1) * 1e-3;
  result.counters.steps = options.samples;
  recorder.finish(result, {{"final/theta", theta, {}, ""}});
  std::printf("finished %lld\n", static_cast<long long>(recorder.samples_flushed()));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    record(parse_options(argc, argv));
  } catch (const gfsim::IoError& error) {
    std::fprintf(stderr, "recorder_stress: %s\n", error.what());
    return 2;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "recorder_stress: %s\n", error.what());
    return 1;
  }
  return 0;
}
