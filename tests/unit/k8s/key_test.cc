// ClassifyKey against the layouts of kube-apiserver's storage (see k8s/key.h).
#include <gtest/gtest.h>

#include "k8s/key.h"

namespace etcdsafe::k8s {
namespace {

TEST(ClassifyKey, NamespacedBuiltIn) {
  KeyInfo k = ClassifyKey("/registry/pods/default/nginx");
  EXPECT_EQ(k.kind, KeyKind::kObject);
  EXPECT_EQ(k.resource, "pods");
  EXPECT_EQ(k.group, "");
  EXPECT_EQ(k.ns, "default");
  EXPECT_EQ(k.name, "nginx");
  EXPECT_FALSE(k.cluster_scoped);
  EXPECT_TRUE(k.known_resource);
}

TEST(ClassifyKey, SpecialPrefixes) {
  KeyInfo svc = ClassifyKey("/registry/services/specs/default/kubernetes");
  EXPECT_EQ(svc.kind, KeyKind::kObject);
  EXPECT_EQ(svc.resource, "services");
  EXPECT_EQ(svc.storage_prefix, "services/specs");
  EXPECT_EQ(svc.ns, "default");
  EXPECT_EQ(svc.name, "kubernetes");
  KeyInfo ep = ClassifyKey("/registry/services/endpoints/kube-system/kube-dns");
  EXPECT_EQ(ep.resource, "endpoints");
  EXPECT_EQ(ep.name, "kube-dns");
  KeyInfo node = ClassifyKey("/registry/minions/node-1");
  EXPECT_EQ(node.kind, KeyKind::kObject);
  EXPECT_EQ(node.resource, "nodes");
  EXPECT_TRUE(node.cluster_scoped);
  EXPECT_EQ(ClassifyKey("/registry/controllers/default/rc1").resource, "replicationcontrollers");
  EXPECT_EQ(ClassifyKey("/registry/ingress/default/web").resource, "ingresses");
  // services/<anything else> is not a layout the API server writes.
  EXPECT_EQ(ClassifyKey("/registry/services/other/default/x").kind, KeyKind::kUnknown);
}

TEST(ClassifyKey, ClusterScoped) {
  for (const char* r : {"namespaces", "persistentvolumes", "clusterroles", "clusterrolebindings", "priorityclasses",
                        "storageclasses"}) {
    KeyInfo k = ClassifyKey(std::string("/registry/") + r + "/x");
    EXPECT_EQ(k.kind, KeyKind::kObject) << r;
    EXPECT_TRUE(k.cluster_scoped) << r;
    EXPECT_EQ(k.name, "x");
    // A cluster-scoped resource never has a namespace segment.
    EXPECT_EQ(ClassifyKey(std::string("/registry/") + r + "/ns/x").kind, KeyKind::kUnknown) << r;
  }
  // And a namespaced one always has one.
  EXPECT_EQ(ClassifyKey("/registry/pods/nginx").kind, KeyKind::kUnknown);
}

TEST(ClassifyKey, GroupPrefixed) {
  KeyInfo crd = ClassifyKey("/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com");
  EXPECT_EQ(crd.kind, KeyKind::kObject);
  EXPECT_EQ(crd.group, "apiextensions.k8s.io");
  EXPECT_EQ(crd.resource, "customresourcedefinitions");
  EXPECT_EQ(crd.name, "widgets.example.com");
  EXPECT_TRUE(crd.cluster_scoped);
  EXPECT_EQ(ClassifyKey("/registry/apiregistration.k8s.io/apiservices/v1.apps").name, "v1.apps");
  KeyInfo cr = ClassifyKey("/registry/example.com/widgets/team-a/w1");
  EXPECT_EQ(cr.kind, KeyKind::kObject);
  EXPECT_EQ(cr.GroupResource(), "example.com/widgets");
  EXPECT_EQ(cr.ns, "team-a");
  EXPECT_EQ(cr.name, "w1");
  KeyInfo ccr = ClassifyKey("/registry/example.com/clusterwidgets/c1");
  EXPECT_TRUE(ccr.cluster_scoped);
  EXPECT_EQ(ClassifyKey("/registry/apiextensions.k8s.io/customresourcedefinitions/ns/x").kind, KeyKind::kUnknown);
}

TEST(ClassifyKey, NonObjectsAndUnknown) {
  KeyInfo ml = ClassifyKey("/registry/masterleases/10.0.0.1");
  EXPECT_EQ(ml.kind, KeyKind::kNonObject);
  EXPECT_EQ(ml.resource, "masterleases");
  EXPECT_EQ(ClassifyKey("/registry/ranges/serviceips").kind, KeyKind::kNonObject);
  EXPECT_EQ(ClassifyKey("/registry/ranges/servicenodeports").resource, "ranges/servicenodeports");
  EXPECT_EQ(ClassifyKey("compact_rev_key").kind, KeyKind::kNonObject);
  EXPECT_EQ(ClassifyKey("/registry/ranges/other").kind, KeyKind::kUnknown);
  EXPECT_EQ(ClassifyKey("/registry/pods/a/b/c").kind, KeyKind::kUnknown);
  EXPECT_EQ(ClassifyKey("/registry/pods//b").kind, KeyKind::kUnknown);
  EXPECT_EQ(ClassifyKey("/registry/").kind, KeyKind::kNotKubernetes);
  EXPECT_EQ(ClassifyKey("/registry//x").kind, KeyKind::kUnknown);
  EXPECT_EQ(ClassifyKey("/other/pods/a/b").kind, KeyKind::kNotKubernetes);
  KeyInfo u = ClassifyKey("/registry/pods/a/b/c");
  EXPECT_EQ(u.key, "/registry/pods/a/b/c");
  EXPECT_EQ(u.resource, "");
  // A resource not in the table: scope from the segment count, flagged as not known.
  KeyInfo n = ClassifyKey("/registry/futurethings/ns1/t");
  EXPECT_EQ(n.kind, KeyKind::kObject);
  EXPECT_FALSE(n.known_resource);
  EXPECT_EQ(n.ns, "ns1");
  // Another prefix (--etcd-prefix).
  EXPECT_EQ(ClassifyKey("/kube/pods/a/b", "/kube/").name, "b");
}

}  // namespace
}  // namespace etcdsafe::k8s
