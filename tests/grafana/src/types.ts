/**
 * Types the dashboard JSON files are checked against (see generate.mjs).
 *
 * The whole dashboard is checked against `Dashboard` from @grafana/schema as it is. Each panel
 * is also checked on its own against a stricter type built from the same package: the panel
 * plugin's own `Options` and `FieldConfig` (so a misspelt option or a wrong value is an error,
 * where `Panel` alone accepts any options), a pinned datasource reference, and the query model
 * of that datasource. On top, the project's own rules: every panel has a description and a unit
 * (a logs panel draws no numbers: it has no unit).
 */
import type {
  AnnotationQuery,
  Dashboard,
  DataQuery,
  DataSourceRef,
  FieldConfig,
  FieldConfigSource,
  Panel,
  RowPanel,
} from '@grafana/schema';
import type * as Heatmap from '@grafana/schema/dist/esm/raw/composable/heatmap/panelcfg/x/HeatmapPanelCfg_types.gen';
import type * as Logs from '@grafana/schema/dist/esm/raw/composable/logs/panelcfg/x/LogsPanelCfg_types.gen';
import type * as Stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type * as Table from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type * as Text from '@grafana/schema/dist/esm/raw/composable/text/panelcfg/x/TextPanelCfg_types.gen';
import type * as TimeSeries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';

/**
 * The schema declares many options as TypeScript string enums (`LegendDisplayMode.List`), but
 * the JSON holds the plain value (`"list"`), which TypeScript does not accept for an enum.
 * `Json<T>` replaces every string enum inside T by the union of its values
 * (`${E}` turns a string enum into its string literals) and keeps everything else.
 */
export type Json<T> = T extends string
  ? `${T}`
  : T extends readonly (infer U)[]
    ? Json<U>[]
    : T extends object
      ? { [K in keyof T]: Json<T[K]> }
      : T;

/** A datasource reference with both parts: the plugin type and the UID pinned in datasource.yml. */
export type PinnedDataSource = Required<Pick<DataSourceRef, 'type' | 'uid'>> &
  Omit<DataSourceRef, 'type' | 'uid'>;

/**
 * Query model of the Prometheus datasource (Grafana's PrometheusDataQuery; the package no longer
 * ships it since the datasource became a separate plugin). `legendFormat` is required here: the
 * project wants every series named on purpose.
 */
export interface PrometheusQuery extends DataQuery {
  datasource: PinnedDataSource & { type: 'prometheus' };
  editorMode?: 'code' | 'builder';
  exemplar?: boolean;
  expr: string;
  format?: 'time_series' | 'table' | 'heatmap';
  instant?: boolean;
  interval?: string;
  intervalFactor?: number;
  legendFormat: string;
  range?: boolean;
}

/** Query model of Grafana's SQL datasources (SQLQuery in @grafana/sql), raw SQL mode only. */
export interface SqlQuery extends DataQuery {
  datasource: PinnedDataSource & { type: 'grafana-postgresql-datasource' };
  editorMode: 'code';
  format: 'time_series' | 'table';
  rawQuery: true;
  rawSql: string;
}

/**
 * Query model of the Loki datasource (LokiDataQuery in Grafana's loki plugin; not in
 * @grafana/schema either), code mode only. `queryType: 'range'` is what a logs panel sends.
 */
export interface LokiQuery extends DataQuery {
  datasource: PinnedDataSource & { type: 'loki' };
  direction?: 'forward' | 'backward' | 'scan';
  editorMode: 'code';
  expr: string;
  legendFormat?: string;
  maxLines?: number;
  queryType: 'range' | 'instant' | 'stream';
  step?: string;
}

/**
 * Query model of the Tempo datasource (TempoQuery in Grafana's tempo plugin), for a TraceQL
 * search shown as a table: `filters` belongs to the search builder and stays empty.
 */
export interface TempoQuery extends DataQuery {
  datasource: PinnedDataSource & { type: 'tempo' };
  filters: never[];
  limit: number;
  query: string;
  queryType: 'traceql';
  spss?: number;
  tableType: 'traces' | 'spans';
}

/** Field defaults: the schema's FieldConfig with a required unit and the plugin's own `custom`. */
type Defaults<Custom> = Omit<Json<FieldConfig>, 'custom' | 'unit'> & {
  unit: string;
  custom?: Json<Custom>;
};

/** A panel of plugin `Type`, with the plugin's options and field config and typed queries. */
export type TypedPanel<Type extends string, Options, Custom, Query> = Omit<
  Json<Panel>,
  'type' | 'datasource' | 'description' | 'options' | 'fieldConfig' | 'targets'
> & {
  type: Type;
  datasource: PinnedDataSource;
  description: string;
  options: Json<Options>;
  fieldConfig: Omit<Json<FieldConfigSource>, 'defaults'> & { defaults: Defaults<Custom> };
  targets: Query[];
};

export type TimeSeriesPanel<Q> = TypedPanel<'timeseries', TimeSeries.Options, TimeSeries.FieldConfig, Q>;
export type StatPanel<Q> = TypedPanel<'stat', Stat.Options, never, Q>;
export type TablePanel<Q> = TypedPanel<'table', Table.Options, Table.FieldConfig, Q>;
export type HeatmapPanel<Q> = TypedPanel<'heatmap', Heatmap.Options, Heatmap.FieldConfig, Q>;

/** A logs panel: log lines, no numbers, so no unit and no field config of its own. */
export type LogsPanel<Q> = Omit<
  Json<Panel>,
  'type' | 'datasource' | 'description' | 'options' | 'fieldConfig' | 'targets'
> & {
  type: 'logs';
  datasource: PinnedDataSource;
  description: string;
  options: Json<Logs.Options>;
  fieldConfig: Json<FieldConfigSource>;
  targets: Q[];
};

/** A text panel shows no data: no datasource, no queries, no unit. */
export type TextPanel = Omit<Json<Panel>, 'type' | 'options' | 'targets' | 'datasource'> & {
  type: 'text';
  options: Json<Text.Options>;
};

/** A row; its nested panels (when collapsed) are checked one by one like top-level panels. */
export type Row = Omit<RowPanel, 'type' | 'panels'> & { type: 'row'; panels: Panel[] };

/**
 * A dashboard as the schema has it, except its annotations: an annotation's fields depend on
 * its datasource, which the schema's AnnotationQuery does not model (Grafana's own
 * AnnotationQuery in @grafana/data accepts any field). Each annotation is checked on its own
 * against its datasource's type below (generate.mjs), as the panels are.
 */
export type DashboardJson = Omit<Json<Dashboard>, 'annotations'> & {
  annotations?: { list?: Array<Json<AnnotationQuery> & Record<string, unknown>> };
};

/**
 * An annotation on the Prometheus datasource: the schema's common fields and those Grafana's
 * Prometheus plugin reads (AnnotationQueryEditor.tsx, annotations.ts): the PromQL `expr` and its
 * minimum `step` (moved into `target` as the dashboard loads), and how each series becomes
 * events: `titleFormat` and `textFormat` (legend templates, {{label}}), `tagKeys` (label names,
 * comma-separated), `useValueForTime`.
 */
export type PrometheusAnnotation = Omit<Json<AnnotationQuery>, 'datasource' | 'target'> & {
  datasource: PinnedDataSource & { type: 'prometheus' };
  expr: string;
  step?: string;
  titleFormat: string;
  textFormat?: string;
  tagKeys?: string;
  useValueForTime?: boolean;
};
