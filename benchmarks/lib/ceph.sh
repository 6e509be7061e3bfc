# Shared by the benchmark harnesses that run a single-host Ceph (benchmarks/s3, benchmarks/replicas): the
# configuration the integration tests' CephRgw engine writes, in shell. One monitor (msgr2 only), one bluestore OSD
# on a sparse file, pools of size 1, cephx, radosgw (beast).

# write_ceph_conf FILE DIR FSID MON_PORT RGW_PORT OSD_BYTES: the configuration, every path under DIR.
write_ceph_conf() {
  local file=$1 dir=$2 fsid=$3 mon_port=$4 rgw_port=$5 osd_bytes=$6
  cat > "$file" <<CONF
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$mon_port]
ms_bind_msgr1 = false
ms_bind_msgr2 = true
ms_bind_ipv6 = false
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
run_dir = $dir/run
crash_dir = $dir/crash
log_file = $dir/log/\$name.log
keyring = $dir/keyring/\$name.keyring
debug_rocksdb = 1/5
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0

[mon]
mon_data = $dir/mon/\$id
keyring = \$mon_data/keyring
mon_data_avail_crit = 1
paxos_propose_interval = 0.1

[osd]
osd_data = $dir/osd/\$id
osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = $osd_bytes
osd_memory_target = 1073741824

[client.rgw.a]
rgw_data = $dir/rgw
rgw_frontends = beast endpoint=127.0.0.1:$rgw_port
CONF
}
