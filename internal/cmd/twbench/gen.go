package main

//go:generate go tool bpf2go -target bpfel benchcount benchcount.c -- -O2 -g -Wall -Werror -I../../../headers
