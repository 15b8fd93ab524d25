import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";

const rule = ruleOf("sgx");

/**
 * `<memory model='sgx-epc'>` (libvirt 8.10+; in virt-aa-helper since libvirt 10): the guest's
 * enclave page cache comes from the host's virtual EPC device, which QEMU opens and maps
 * (qemu backends/hostmem-epc.c: `/dev/sgx_vepc` O_RDWR); with the `sgx-provisionkey` CPU feature
 * QEMU hands KVM a read-only descriptor of `/dev/sgx_provision` (qemu target/i386/kvm/kvm.c,
 * kvm_enable_sgx_provisioning: O_RDONLY). libvirt's virt-aa-helper.c get_files grants the same
 * pair (`rw` and `r`, VIR_DOMAIN_MEMORY_MODEL_SGX_EPC), and qemu_cgroup.c/qemu_namespace.c let
 * QEMU reach both for every sgx-epc guest, so the provisioning node is granted whether or not the
 * CPU asks for the key. One pair for the guest, named after the first EPC section.
 */
export const sgxRules: RuleFamily = (ctx: RuleContext) => {
  const first = ctx.domain.devices.memoryDevices.findIndex((mem) => mem.model === "sgx-epc");
  if (first < 0) return [];
  const source = `memory ${first} sgx-epc`;
  return [rule("/dev/sgx_vepc", "rw", source), rule("/dev/sgx_provision", "r", source)];
};
