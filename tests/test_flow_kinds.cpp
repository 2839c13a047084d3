// The flow-kind contract (include/gfsim/flow_kind.hpp), checked for every kind of the name table
// (src/flow_kinds.cpp), so a new kind is tested by adding its line: the state stands for its
// weights (theta of initial_state is the identity, the tangent map is the derivative of theta,
// norms times directions are the weights), the exact tangent of the field matches differences of
// the field in y and dF/dt differences in t, the sliding solve's LayerResponse describes the
// field's layer-1 block, and models/README.md documents exactly the kinds of the table.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <string>

#include "gfsim/enum_names.hpp"
#include "gfsim/flow.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

struct NetCase {
  const char* name;
  std::vector<Index> widths;
  Activation act;
};

const NetCase kNets[] = {{"linear_K1", {3, 1}, Activation::linear},
                         {"relu_K3", {3, 4, 5, 1}, Activation::relu},
                         {"linear_K2", {3, 2, 1}, Activation::linear}};

class EveryFlowKind : public testing::TestWithParam<std::string> {
 protected:
  static Flow flow_on(const NetCase& c, const Dataset& data, LossKind loss = LossKind::exp) {
    FlowSpec spec;
    spec.kind = FlowKind{flow_kind_entry(GetParam()).name};
    spec.rho = 1.7;
    return Flow(Network(c.widths, c.act), data, loss, spec);
  }
  static const FlowKindEntry& flow_kind_entry(const std::string& name) {
    for (const FlowKindEntry& e : flow_kind_table())
      if (name == e.name) return e;
    throw std::invalid_argument(name);
  }
};

TEST_P(EveryFlowKind, StateStandsForItsWeights) {
  const Dataset data = test::separable_data(7, 3, 31);
  for (const NetCase& c : kNets) {
    const Flow flow = flow_on(c, data);
    const Network& net = flow.network();
    // A balanced start (every layer norm rho^(1/K)) is representable by every kind, fixed_rho too.
    Vec theta = test::random_vector(flow.num_params(), 32);
    for (Index k = 0; k < net.num_layers(); ++k) {
      auto W = theta.segment(net.layer_offset(k), net.layer_size(k));
      W *= std::pow(1.7, 1.0 / double(net.num_layers())) / W.norm();
    }
    const Vec y = flow.initial_state(theta);
    ASSERT_EQ(y.size(), flow.state_size()) << c.name;
    EXPECT_LT((flow.theta(y) - theta).norm(), 1e-14 * theta.norm()) << c.name;
    // W_k = rho_k V_k with unit V_k.
    const Vec rho = flow.layer_norms(y), V = flow.direction(y);
    for (Index k = 0; k < net.num_layers(); ++k) {
      const Index o = net.layer_offset(k), m = net.layer_size(k);
      EXPECT_NEAR(V.segment(o, m).norm(), 1.0, 1e-14) << c.name << " layer " << k;
      EXPECT_LT((rho[k] * V.segment(o, m) - theta.segment(o, m)).norm(), 1e-14 * theta.norm()) << c.name;
    }
    // The tangent map is the derivative of theta(y).
    const Vec v = test::random_vector(flow.state_size(), 33);
    const double h = 1e-6;
    const Vec fd = (flow.theta(y + h * v) - flow.theta(y - h * v)) / (2 * h);
    const Vec dtheta = flow.kind_model().theta_tangent(net, y, v);
    EXPECT_LT((dtheta - fd).norm(), 1e-8 * (1 + fd.norm())) << c.name;
  }
}

TEST_P(EveryFlowKind, TangentAndTimeDerivativeMatchDifferences) {
  const Dataset data = test::separable_data(6, 3, 34);
  for (const NetCase& c : kNets)
    for (LossKind loss : {LossKind::exp, LossKind::logistic, LossKind::square}) {
      const Flow flow = flow_on(c, data, loss);
      const Vec y = flow.initial_state(test::random_vector(flow.num_params(), 35, 0.8));
      const Vec v = test::random_vector(flow.state_size(), 36);
      for (const TimePoint tp : {TimePoint{0.0, 0.0}, TimePoint{3.0, 1.2}}) {
        Vec jv, fp, fm, dft;
        flow.jvp(tp, y, v, jv);
        const double h = 1e-6;
        flow.rhs(tp, y + h * v, fp);
        flow.rhs(tp, y - h * v, fm);
        const Vec fd = (fp - fm) / (2 * h);
        EXPECT_LT((jv - fd).norm(), 1e-6 * (1 + fd.norm())) << c.name << " " << to_string(loss);
        Mat J;
        flow.jacobian(tp, y, J);
        EXPECT_LT((J * v - jv).norm(), 1e-10 * (1 + jv.norm())) << c.name << " " << to_string(loss);
        // dF/dt at fixed y and fixed clock factor (zero for autonomous kinds: F must not move in t).
        flow.time_derivative(tp, y, dft);
        const double ht = 1e-5 * (1 + tp.t);
        flow.rhs({tp.t + ht, tp.log_scale}, y, fp);
        flow.rhs({tp.t - ht, tp.log_scale}, y, fm);
        EXPECT_LT((dft - (fp - fm) / (2 * ht)).norm(), 1e-6 * (1 + fp.norm())) << c.name;
      }
    }
}

TEST_P(EveryFlowKind, LayerResponseDescribesTheFirstLayerBlock) {
  // One hidden ReLU layer, as in the sliding solve. The field's layer-1 block is alpha P(G_1) plus
  // terms free of G (P the tangent projection when projected), G = sum_n a_n df_n(V)/dV the loss
  // descent at V. Duplicating data point 0 adds its term dG to G (its weight a_0 is unchanged), so
  // the block must move by alpha P(dG). dG independently: by homogeneity in each layer,
  // df(V)/dV_1 = (s_1/rho) df(W)/dW_1 at W_k = s_k V_k, rho = prod s_k, from a one-point gd flow.
  // The loss-normalized kinds divide every weight by L, which a duplicated point changes and a
  // kink's mask does not (f_n is continuous across the surface): their response is checked by the
  // sliding solve itself (test_rho_flows.cpp, SlidingKeepsThePreactivationOnItsSurface).
  if (GetParam() == "normalized" || GetParam() == "rho_schedule_normalized")
    GTEST_SKIP() << "duplicating a point changes L";
  const Dataset data = test::separable_data(9, 3, 37);
  const std::vector<Index> widths{3, 4, 1};
  const Flow flow = flow_on({"relu_K2", widths, Activation::relu}, data);
  const Network& net = flow.network();
  const Vec y = flow.initial_state(test::random_vector(flow.num_params(), 38));
  const LayerResponse r = flow.kind_model().layer_response(net, TimePoint{}, y, 0);
  const Index m = net.layer_size(0);
  const auto V1 = y.segment(r.offset, m);
  const Vec theta = flow.theta(y);
  EXPECT_LT((r.weight_scale * V1 - theta.segment(0, m)).norm(), 1e-14 * theta.norm());
  double rho = 1.0;
  for (Index k = 0; k < net.num_layers(); ++k) rho *= flow.kind_model().layer_response(net, TimePoint{}, y, k).weight_scale;

  Dataset doubled = data;
  doubled.X.conservativeResize(data.n() + 1, Eigen::NoChange);
  doubled.y.conservativeResize(data.n() + 1);
  doubled.X.row(data.n()) = data.X.row(0);
  doubled.y[data.n()] = data.y[0];
  FlowSpec spec;
  spec.kind = flow.kind();
  spec.rho = 1.7;
  const Flow twice(Network(widths, Activation::relu), doubled, LossKind::exp, spec);
  Vec F, F2;
  flow.rhs(TimePoint{}, y, F);
  twice.rhs(TimePoint{}, y, F2);

  Dataset first{data.X.topRows(1), data.y.head(1)};
  const Flow point0(Network(widths, Activation::relu), first, LossKind::exp, FlowKind::gd);
  Vec grad;
  point0.loss_gradient(theta, grad);
  Vec dG1 = -grad.head(m) * (r.weight_scale / rho);
  if (r.projected) dG1 -= (V1.dot(dG1) / V1.squaredNorm()) * V1;
  const Vec expected = r.alpha * dG1;
  const Vec measured = F2.segment(r.offset, m) - F.segment(r.offset, m);
  ASSERT_GT(expected.norm(), 1e-8);  // the point's term is there to see
  EXPECT_LT((measured - expected).norm(), 1e-12 * (1 + expected.norm())) << GetParam();
}

TEST(FlowKindTable, ModelsReadmeDocumentsExactlyTheTableKinds) {
  std::ifstream readme(std::string(GFSIM_SOURCE_DIR) + "/models/README.md");
  ASSERT_TRUE(readme.good());
  std::string line;
  bool in_section = false;
  std::set<std::string> documented;
  const std::regex row(R"(^\| `([a-z_0-9]+)` \|)");
  while (std::getline(readme, line)) {
    if (line.rfind("## ", 0) == 0) in_section = line.find("(`flow.kind`") != std::string::npos;
    std::smatch m;
    if (in_section && std::regex_search(line, m, row)) documented.insert(m[1]);
  }
  const std::vector<std::string> names = test::flow_kind_names();
  EXPECT_EQ(documented, std::set<std::string>(names.begin(), names.end()));
}

TEST(FlowKindTable, NamesAreTheModelReadersChoices) {
  std::vector<std::string> reader;
  for (const auto& [kind, name] : EnumNames<FlowKind>::table) {
    reader.emplace_back(name);
    EXPECT_EQ(kind.name, name);
  }
  EXPECT_EQ(reader, test::flow_kind_names());
  EXPECT_THROW(make_flow_kind(FlowSpec{.kind = FlowKind{"no_such_kind"}, .rho = 1.0}), std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(Table, EveryFlowKind, testing::ValuesIn(test::flow_kind_names()),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace gfsim
