// Placeholder translation unit so the library exists before its first part lands.
namespace etcdsafe::controlplane {
int LibraryVersion() { return 1; }
}  // namespace etcdsafe::controlplane
