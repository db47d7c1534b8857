// A shared object that is not a Berth plugin: no entry points.
extern "C" __attribute__((visibility("default"))) int not_a_berth_plugin() { return 42; }
