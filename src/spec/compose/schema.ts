/** The compose-spec schema (zod), as much of it as rkl reads: what one file may hold. */
import * as z from "../zod.ts";

const strOrList = z.union([z.string(), z.array(z.string())]);

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);

const duration = z.union([z.string(), z.number()]);

const portLong = z.strictObject({
  target: z.number().int().min(1).max(65535),
  published: z.union([z.string(), z.number()]).optional(),
  host_ip: z.string().optional(),
  protocol: z.enum(["tcp", "udp"]).optional(),
  mode: z.string().optional(),
  name: z.string().optional(),
  app_protocol: z.string().optional(),
});

const volumeLong = z.strictObject({
  type: z.enum(["bind", "volume", "tmpfs"]),
  source: z.string().optional(),
  target: z.string(),
  read_only: z.boolean().optional(),
  bind: z.strictObject({
    create_host_path: z.boolean().optional(),
    propagation: z.string().optional(),
  }).optional(),
  volume: z.strictObject({ nocopy: z.boolean().optional() }).optional(),
  tmpfs: z.strictObject({
    size: z.union([z.string(), z.number()]).optional(),
    mode: z.number().int().min(0).max(0o7777).optional(),
  }).optional(),
});

const fileRef = z.union([
  z.string(),
  z.strictObject({
    source: z.string(),
    target: z.string().optional(),
    uid: z.union([z.string(), z.number()]).optional(),
    gid: z.union([z.string(), z.number()]).optional(),
    mode: z.union([z.number(), z.string()]).optional(),
  }),
]);

const serviceHook = z.strictObject({
  command: strOrList,
  user: z.union([z.string(), z.number()]).optional(),
  privileged: z.boolean().optional(),
  working_dir: z.string().optional(),
  environment: z.union([z.record(z.string(), scalar), z.array(z.string())]).optional(),
});

export const serviceSchema = z.strictObject({
  extends: z.union([
    z.string(),
    z.strictObject({ service: z.string(), file: z.string().optional() }),
  ]).optional(),
  image: z.string().optional(),
  tmpfs: strOrList.optional(),
  pull_policy: z.string().optional(),
  command: z.union([strOrList, z.null()]).optional(),
  entrypoint: z.union([strOrList, z.null()]).optional(),
  environment: z.union([z.record(z.string(), scalar), z.array(z.string())]).optional(),
  env_file: z.union([
    z.string(),
    z.array(
      z.union([z.string(), z.strictObject({ path: z.string(), required: z.boolean().optional() })]),
    ),
  ])
    .optional(),
  ports: z.array(z.union([z.string(), z.number(), portLong])).optional(),
  expose: z.array(z.union([z.string(), z.number()])).optional(),
  volumes: z.array(z.union([z.string(), volumeLong])).optional(),
  networks: z.union([
    z.array(z.string()),
    z.record(
      z.string(),
      z.union([
        z.null(),
        z.strictObject({
          aliases: z.array(z.string()).optional(),
          ipv4_address: z.string().optional(),
          ipv6_address: z.string().optional(),
          mac_address: z.string().optional(),
        }),
      ]),
    ),
  ]).optional(),
  depends_on: z.union([
    z.array(z.string()),
    z.record(
      z.string(),
      z.strictObject({
        condition: z.enum(["service_started", "service_healthy", "service_completed_successfully"])
          .optional(),
        restart: z.boolean().optional(),
        required: z.boolean().optional(),
      }),
    ),
  ]).optional(),
  healthcheck: z.strictObject({
    test: strOrList.optional(),
    interval: duration.optional(),
    timeout: duration.optional(),
    retries: z.number().int().min(0).optional(),
    start_period: duration.optional(),
    start_interval: duration.optional(),
    disable: z.boolean().optional(),
  }).optional(),
  restart: z.string().regex(
    /^(no|always|unless-stopped|on-failure(:\d+)?)$/,
    'must be "no", "always", "on-failure" or "unless-stopped"',
  )
    .optional(),
  container_name: z.string().optional(),
  hostname: z.string().optional(),
  working_dir: z.string().optional(),
  user: z.union([z.string(), z.number()]).optional(),
  cpus: z.union([z.number(), z.string()]).optional(),
  mem_limit: z.union([z.number(), z.string()]).optional(),
  deploy: z.strictObject({
    // One host is one node: `global` runs one replica.
    mode: z.enum(["replicated", "global"]).optional(),
    replicas: z.number().int().min(0).optional(),
    resources: z.strictObject({
      limits: z.strictObject({
        cpus: z.union([z.number(), z.string()]).optional(),
        memory: z.union([z.number(), z.string()]).optional(),
        pids: z.number().int().min(-1).optional(),
      })
        .optional(),
      reservations: z.strictObject({
        cpus: z.union([z.number(), z.string()]).optional(),
        memory: z.union([z.number(), z.string()]).optional(),
      })
        .optional(),
    }).optional(),
    restart_policy: z.strictObject({
      condition: z.string().optional(),
      max_attempts: z.number().optional(),
    }).optional(),
  }).optional(),
  scale: z.number().int().min(0).optional(),
  pids_limit: z.number().int().min(-1).optional(),
  configs: z.array(fileRef).optional(),
  secrets: z.array(fileRef).optional(),
  profiles: z.array(z.string()).optional(),
  labels: z.union([z.record(z.string(), scalar), z.array(z.string())]).optional(),
  privileged: z.boolean().optional(),
  cap_add: z.array(z.string()).optional(),
  cap_drop: z.array(z.string()).optional(),
  read_only: z.boolean().optional(),
  stop_grace_period: duration.optional(),
  tty: z.boolean().optional(),
  init: z.boolean().optional(),
  post_start: z.array(serviceHook).optional(),
  pre_stop: z.array(serviceHook).optional(),
  mac_address: z.string().optional(),
  links: z.array(z.string()).optional(),
  security_opt: z.array(z.string()).optional(),
  stdin_open: z.boolean().optional(),
  network_mode: z.string().optional(),
  stop_signal: z.string().regex(/^(SIG)?[A-Z0-9+-]+$|^\d+$/i, "must be a signal such as SIGINT")
    .optional(),
  shm_size: z.union([z.number(), z.string()]).optional(),
  sysctls: z.union([z.record(z.string(), scalar), z.array(z.string())]).optional(),
  ulimits: z.record(
    z.string(),
    z.union([
      z.number().int(),
      z.strictObject({ soft: z.number().int(), hard: z.number().int() }),
    ]),
  ).optional(),
});

export const projectSchema = z.strictObject({
  version: z.union([z.string(), z.number()]).optional(),
  name: z.string().optional(),
  include: z.array(z.union([
    z.string(),
    z.strictObject({
      path: strOrList,
      project_directory: z.string().optional(),
      env_file: strOrList.optional(),
    }),
  ])).optional(),
  services: z.record(z.string(), z.union([serviceSchema, z.null()])).optional(),
  networks: z.record(
    z.string(),
    z.union([
      z.null(),
      z.strictObject({
        driver: z.string().optional(),
        name: z.string().optional(),
        external: z.boolean().optional(),
        internal: z.boolean().optional(),
        enable_ipv6: z.boolean().optional(),
        ipam: z.strictObject({
          driver: z.string().optional(),
          config: z.array(z.strictObject({ subnet: z.string().optional() })).optional(),
        })
          .optional(),
        driver_opts: z.record(z.string(), z.string()).optional(),
        labels: z.union([z.record(z.string(), z.string()), z.array(z.string())]).optional(),
      }),
    ]),
  ).optional(),
  volumes: z.record(
    z.string(),
    z.union([
      z.null(),
      z.strictObject({
        driver: z.string().optional(),
        driver_opts: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
        name: z.string().optional(),
        external: z.boolean().optional(),
      }),
    ]),
  ).optional(),
  configs: z.record(
    z.string(),
    z.strictObject({
      file: z.string().optional(),
      content: z.string().optional(),
      environment: z.string().optional(),
      external: z.boolean().optional(),
    }),
  )
    .optional(),
  secrets: z.record(
    z.string(),
    z.strictObject({
      file: z.string().optional(),
      environment: z.string().optional(),
      external: z.boolean().optional(),
    }),
  )
    .optional(),
});

export type RawProject = z.output<typeof projectSchema>;

export type RawService = z.output<typeof serviceSchema>;
