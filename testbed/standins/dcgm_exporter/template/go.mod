module github.com/NVIDIA/dcgm-exporter

go 1.19
