// vcsim for LoRA Studio's tests: govmomi's vCenter simulator (Debian's 0.24) on loopback,
// with a Guest Operations process manager that runs programs on this machine so that the
// real StartProgramInGuest / ListProcessesInGuest / TerminateProcessInGuest SOAP calls are
// exercised (the stock one needs Docker). Prints the SDK URL on one line, then serves
// until stdin closes or it is signalled. Built by build.sh next to this file.
//
// For the vSphere operations tests it also serves the SPBM endpoint (/pbm, govmomi's pbm
// simulator), gives every host two NVIDIA A100 PCI devices enabled for passthrough and a list
// of vGPU profiles, and lets VMware Tools "start" in a VM shortly after it is powered on (the
// stock simulator never reports Tools or an IP for a VM created after start-up).
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	_ "github.com/vmware/govmomi/pbm/simulator" // registers the /pbm endpoint (RegisterEndpoints below)
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

var guestUser, guestPassword string

type procManager struct {
	mo.GuestProcessManager
	mu    sync.Mutex
	procs map[int64]*types.GuestProcessInfo
}

// checkGuest refuses what a real vCenter refuses: an unknown or powered-off VM, bad credentials.
func checkGuest(ctx *simulator.Context, ref types.ManagedObjectReference, auth types.BaseGuestAuthentication) *soap.Fault {
	vm, ok := ctx.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return simulator.Fault("", &types.ManagedObjectNotFound{Obj: ref})
	}
	if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		return simulator.Fault("", &types.InvalidPowerState{ExistingState: vm.Runtime.PowerState})
	}
	if a, ok := auth.(*types.NamePasswordAuthentication); !ok || a.Username != guestUser || a.Password != guestPassword {
		return simulator.Fault("", new(types.InvalidGuestLogin))
	}
	return nil
}

// StartProgramInGuest runs the program the way VMware Tools does on Linux: through bash.
func (m *procManager) StartProgramInGuest(ctx *simulator.Context, req *types.StartProgramInGuest) soap.HasFault {
	body := new(methods.StartProgramInGuestBody)
	if body.Fault_ = checkGuest(ctx, req.Vm, req.Auth); body.Fault_ != nil {
		return body
	}
	spec := req.Spec.GetGuestProgramSpec()
	cmd := exec.Command("/bin/bash", "-c", spec.ProgramPath+" "+spec.Arguments)
	cmd.Dir, cmd.Env = spec.WorkingDirectory, append(os.Environ(), spec.EnvVariables...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		body.Fault_ = simulator.Fault(err.Error(), &types.FileNotFound{FileFault: types.FileFault{File: spec.ProgramPath}})
		return body
	}
	pid, now := int64(cmd.Process.Pid), time.Now()
	info := &types.GuestProcessInfo{Name: spec.ProgramPath, Pid: pid, Owner: guestUser,
		CmdLine: spec.ProgramPath + " " + spec.Arguments, StartTime: now}
	m.mu.Lock()
	m.procs[pid] = info
	m.mu.Unlock()
	go func() { // record the exit like VMware Tools does, for ListProcessesInGuest
		err := cmd.Wait()
		end, code := time.Now(), int32(cmd.ProcessState.ExitCode())
		if err != nil && code < 0 {
			code = 128 + int32(cmd.ProcessState.Sys().(syscall.WaitStatus).Signal())
		}
		m.mu.Lock()
		info.EndTime, info.ExitCode = &end, code
		m.mu.Unlock()
	}()
	body.Res = &types.StartProgramInGuestResponse{Returnval: pid}
	return body
}

func (m *procManager) ListProcessesInGuest(ctx *simulator.Context, req *types.ListProcessesInGuest) soap.HasFault {
	body := new(methods.ListProcessesInGuestBody)
	if body.Fault_ = checkGuest(ctx, req.Vm, req.Auth); body.Fault_ != nil {
		return body
	}
	body.Res = new(types.ListProcessesInGuestResponse)
	m.mu.Lock()
	defer m.mu.Unlock()
	for pid, info := range m.procs {
		wanted := len(req.Pids) == 0
		for _, p := range req.Pids {
			wanted = wanted || p == pid
		}
		if wanted {
			body.Res.Returnval = append(body.Res.Returnval, *info)
		}
	}
	return body
}

// TerminateProcessInGuest sends SIGTERM, then SIGKILL five seconds later, as VMware Tools does.
func (m *procManager) TerminateProcessInGuest(ctx *simulator.Context, req *types.TerminateProcessInGuest) soap.HasFault {
	body := new(methods.TerminateProcessInGuestBody)
	if body.Fault_ = checkGuest(ctx, req.Vm, req.Auth); body.Fault_ != nil {
		return body
	}
	if err := syscall.Kill(int(req.Pid), syscall.SIGTERM); err != nil {
		body.Fault_ = simulator.Fault(err.Error(), &types.GuestProcessNotFound{Pid: req.Pid})
		return body
	}
	go func() { time.Sleep(5 * time.Second); syscall.Kill(int(req.Pid), syscall.SIGKILL) }()
	body.Res = new(types.TerminateProcessInGuestResponse)
	return body
}

// gpuHosts gives each host two A100s enabled for passthrough and the vGPU profiles of an
// NVIDIA AI Enterprise host, as host.hardware.pciDevice, host.config.pciPassthruInfo and
// host.config.sharedPassthruGpuTypes report them on ESXi.
func gpuHosts() {
	for _, obj := range simulator.Map.All("HostSystem") {
		host := obj.(*simulator.HostSystem)
		devices := append([]types.HostPciDevice(nil), host.Hardware.PciDevice...) // the copy is this host's own
		var passthru []types.BaseHostPciPassthruInfo
		for i, bus := range []byte{0x3b, 0xd8} {
			id := fmt.Sprintf("0000:%02x:00.0", bus)
			devices = append(devices, types.HostPciDevice{Id: id, ClassId: 0x0302, Bus: bus, VendorId: 0x10de,
				SubVendorId: 0x10de, VendorName: "NVIDIA Corporation", DeviceId: 0x20f1, SubDeviceId: int16(0x145f + i),
				DeviceName: "NVIDIA A100-PCIE-40GB"})
			passthru = append(passthru, &types.HostPciPassthruInfo{Id: id, DependentDevice: id,
				PassthruEnabled: true, PassthruCapable: true, PassthruActive: true})
		}
		host.Hardware.PciDevice = devices
		host.Config.PciPassthruInfo = passthru
		host.Config.SharedPassthruGpuTypes = []string{"grid_a100-4c", "grid_a100-8c", "grid_a100-20c", "grid_a100-40c"}
	}
}

// toolsOnBoot is a registry handler: when a VM is powered on, VMware Tools starts in it a
// moment later and reports the guest IP, as a booting Linux guest does.
type toolsOnBoot struct{ guestIP string }

func (t *toolsOnBoot) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "LoraStudioToolsOnBoot", Value: "tools-on-boot"}
}
func (t *toolsOnBoot) PutObject(mo.Reference)                    {}
func (t *toolsOnBoot) RemoveObject(types.ManagedObjectReference) {}
func (t *toolsOnBoot) UpdateObject(obj mo.Reference, changes []types.PropertyChange) {
	vm, ok := obj.(*mo.VirtualMachine)
	if !ok {
		return
	}
	for _, change := range changes {
		if change.Name == "runtime.powerState" && change.Val == types.VirtualMachinePowerStatePoweredOn {
			ref := vm.Self
			go func() { // after the power-on task has returned, like a guest that boots
				time.Sleep(100 * time.Millisecond)
				live, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
				if !ok {
					return
				}
				simulator.Map.WithLock(live, func() {
					simulator.Map.Update(live, []types.PropertyChange{
						{Name: "guest.toolsRunningStatus", Val: "guestToolsRunning"},
						{Name: "guest.toolsStatus", Val: types.VirtualMachineToolsStatusToolsOk},
						{Name: "guest.ipAddress", Val: t.guestIP},
						{Name: "summary.guest.ipAddress", Val: t.guestIP},
					})
				})
			}()
		}
	}
}

// selfSigned makes a fresh P-256 certificate for 127.0.0.1/localhost, like a new vCenter's own.
// (httptest's built-in one has a 1024-bit RSA key, which OpenSSL now refuses outright.)
func selfSigned() tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	template := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:   pkix.Name{CommonName: "vcsim.local", Organization: []string{"LoRA Studio test vCenter"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "host:port to serve on")
	useTLS := flag.Bool("tls", false, "serve https with a fresh self-signed certificate")
	user := flag.String("user", "admin", "vCenter user")
	password := flag.String("password", "vc-secret", "vCenter password")
	guestIP := flag.String("guest-ip", "127.0.0.1", "IP address every VM's guest reports")
	flag.StringVar(&guestUser, "guest-user", "guest", "guest operations user")
	flag.StringVar(&guestPassword, "guest-password", "guest-secret", "guest operations password")
	flag.Parse()

	model := simulator.VPX()
	if err := model.Create(); err != nil {
		fmt.Fprintln(os.Stderr, "vcsim:", err)
		os.Exit(1)
	}
	defer model.Remove()
	for _, obj := range simulator.Map.All("VirtualMachine") {
		vm := obj.(*simulator.VirtualMachine)
		vm.Guest.ToolsStatus, vm.Guest.ToolsRunningStatus = types.VirtualMachineToolsStatusToolsOk, "guestToolsRunning"
		vm.Guest.IpAddress, vm.Guest.GuestFullName, vm.Guest.GuestId = *guestIP, "Ubuntu Linux (64-bit)", "ubuntu64Guest"
	}
	gpuHosts()
	simulator.Map.AddHandler(&toolsOnBoot{guestIP: *guestIP})
	simulator.Map.Put(&procManager{GuestProcessManager: mo.GuestProcessManager{Self: types.ManagedObjectReference{
		Type: "GuestProcessManager", Value: "guestOperationsProcessManager"}}, procs: map[int64]*types.GuestProcessInfo{}})

	model.Service.RegisterEndpoints = true // the SPBM simulator registered by its package's init
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, *password)}
	if *useTLS {
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned()}}
	}
	server := model.Service.NewServer()
	defer server.Close()
	shown := *server.URL // a copy: server.URL is the Service's Listen, whose User is the login
	shown.User = nil
	fmt.Println(shown.String())
	io.Copy(io.Discard, os.Stdin) // serve until the test closes our stdin (or kills us)
}
