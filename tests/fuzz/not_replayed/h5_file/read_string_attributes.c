#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
// H5Fopen + reading the string attribute /@model_name as gfsim does (variable-length UTF-8).
int main(int argc, char** argv) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) { puts("open failed"); return 0; }
  const char* names[] = {"file_type", "gfsim_version", "git_commit", "created", "model_name", "flow", "loss", "model_toml"};
  for (int i = 0; i < 8; ++i) {
    hid_t a = H5Aopen(f, names[i], H5P_DEFAULT);
    if (a < 0) continue;
    hid_t t = H5Aget_type(a), m = H5Tget_native_type(t, H5T_DIR_DEFAULT);
    char* s = NULL;
    fprintf(stderr, "reading %s\n", names[i]);
    herr_t r = H5Aread(a, m, &s);
    fprintf(stderr, "%s: %d\n", names[i], (int)r);
    H5Tclose(m); H5Tclose(t); H5Aclose(a);
  }
  H5Fclose(f);
  return 0;
}
