#!/usr/bin/env node
import { launch } from '../dist/common/launch.js';

launch('ebpf-tools');
